#!/usr/bin/env bash
# Runs the depth-engine binding's tests (unit tests in src/depthengine/ and the integration
# tests in tests/depthengine.rs) under valgrind memcheck. Exit status is non-zero on any memory
# error or definite/possible leak.
#
# Microsoft's libdepthengine (and the GL/X11 libraries it pulls in) is not ours and may leak;
# valgrind-depthengine.supp suppresses only leaks whose allocation stack lies inside
# libdepthengine.so.2.0, plus one entry for the Rust standard library's own per-thread handle
# (a 48-byte "possibly lost" of libtest's main thread, see the .supp file). Everything in
# freek4a and in the emulated engine is checked.
#
# Usage: scripts/valgrind-depthengine.sh   (set FREEK4A_DEPTH_ENGINE to include the real engine)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }

# Build both test binaries (this also builds the emulated engine's cdylib) and find them.
bins=$(cargo test --workspace --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("freek4a", "tests") and m["target"]["kind"] in (["lib"], ["test"]):
        print(m["target"]["name"], m["executable"])
')
[ -n "$bins" ] || { echo "could not build the test binaries" >&2; exit 2; }

status=0
while read -r name exe; do
  case "$name" in
    freek4a) filter=depthengine:: ;;
    tests) filter=depthengine:: ;;
  esac
  echo "== valgrind $exe $filter" >&2
  valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
    --errors-for-leak-kinds=definite,possible \
    --suppressions=scripts/valgrind-depthengine.supp \
    "$exe" "$filter" --test-threads=1 || status=1
done <<< "$bins"
if [ "$status" = 0 ]; then echo "valgrind: clean" >&2; else echo "valgrind: FAILED" >&2; fi
exit "$status"
