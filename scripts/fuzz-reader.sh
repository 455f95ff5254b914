#!/usr/bin/env bash
# Runs the recording-reader fuzz target for a given number of executions, seeded with the
# recordings in tests/fixtures/. Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`).
#
# usage: scripts/fuzz-reader.sh [RUNS]     (default 100000)
set -euo pipefail
runs="${1:-100000}"
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$root/fuzz/corpus/reader"
mkdir -p "$corpus"
# Seed corpus: the fixtures, plus their first 64 KiB (the header elements and first clusters),
# which mutate faster than megabyte-sized inputs.
for f in "$root"/tests/fixtures/*.mkv; do
    cp -f "$f" "$corpus/$(basename "$f")"
    head -c 65536 "$f" > "$corpus/head-$(basename "$f")"
done
cd "$root/fuzz"
exec cargo +nightly fuzz run reader "$corpus" -- \
    -runs="$runs" -max_len=2000000 -rss_limit_mb=2048 -timeout=30
