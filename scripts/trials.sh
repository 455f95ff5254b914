#!/usr/bin/env bash
# Robustness trials of the recorder on the emulator, judged by Microsoft's playback: kill -9 at
# random moments (then repair), full disk, unplug, slow disk, stream faults, and mutated files
# fed to the reader. They are the `recorder::trial_*` tests of tests/recorder.rs at full size
# (`cargo test` runs them reduced). Prints one TRIAL line per trial with its counts.
#
# usage: scripts/trials.sh [KILL_TRIALS] [FUZZ_EXECUTIONS]     (default 20 and 20000)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export FREEK4A_KILL_TRIALS="${1:-20}"
export FREEK4A_FUZZ_EXECS="${2:-20000}"
export FREEK4A_REQUIRE_JUDGES="${FREEK4A_REQUIRE_JUDGES:-1}"
cargo build --release -p freek4a-emulated-depthengine --bins >/dev/null
log="$(mktemp)"
status=0
cargo test --release --test tests recorder::trial_ -- --nocapture --test-threads=1 >"$log" 2>&1 || status=$?
grep -E '^(kill trial|TRIAL|test recorder|test result)' "$log" || true
if [ "$status" -ne 0 ]; then
    echo "--- failures ---"
    grep -E 'panicked|assertion|left:|right:' "$log" || true
fi
rm -f "$log"
exit "$status"
