#!/usr/bin/env bash
# valgrind memcheck of libfreek4a_headless_gl.so, with no DISPLAY, on Mesa's llvmpipe:
#  1. the engine's call sequence (crates/headless-gl/tests/engine_sequence.rs): stand-in display,
#     config, visual, window, 4.4 core context, made current, GL calls, everything released
#     (about a minute);
#  2. with FREEK4A_VALGRIND_TRANSFORM=1, also the headless transform-engine case (the child
#     process of tests/headless_gl.rs: Microsoft's transform engine from pyk4a-bundle through
#     freek4a's binding, depth->colour of the real fixture recording). llvmpipe then compiles the
#     engine's compute shaders with LLVM under valgrind: tens of minutes. Needs the SDK oracle.
#
# An error belongs to the code of its innermost frame outside libc, the dynamic loader,
# libstdc++ and valgrind's allocator; a leak to the code that called the allocator. The
# script fails when any memcheck error, or any definite/possible leak, belongs to
# libfreek4a_headless_gl.so or to freek4a's code (the test binaries), or when a case itself
# failed. Errors that belong to Mesa, LLVM's JIT code, the GL dispatch libraries or the closed
# engine are counted by library and listed, not failed on: they are not ours to fix. The
# project's suppressions (valgrind-depthengine.supp) apply.
#
# Usage: scripts/valgrind-headless-gl.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }

bins=$(cargo test --release --workspace --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("tests", "engine_sequence"):
        print(m["target"]["name"], m["executable"])
')
exe=$(sed -n 's/^tests //p' <<< "$bins")
seq_exe=$(sed -n 's/^engine_sequence //p' <<< "$bins")
[ -n "$exe" ] && [ -n "$seq_exe" ] || { echo "could not build the test binaries" >&2; exit 2; }
# cargo builds the library as a dependency of freek4a, next to the test binaries in deps/ (it is
# copied up to target/<profile>/ only by a build that names the package).
lib="$(dirname "$exe")/libfreek4a_headless_gl.so"
[ -f "$lib" ] || lib="$(dirname "$(dirname "$exe")")/libfreek4a_headless_gl.so"
[ -f "$lib" ] || { echo "libfreek4a_headless_gl.so was not built next to $exe" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/freek4a-vg-gl.XXXXXX")
trap 'rm -rf "$work"' EXIT

# judge XML CASE_OK: prints the errors by owner; fails on ours or on a failed case.
judge() {
  python3 - "$1" "$2" <<'PY'
import os, sys
import xml.etree.ElementTree as ET
path, case_ok = sys.argv[1], sys.argv[2] == "1"
root = ET.parse(path).getroot()
ours_markers = ("libfreek4a_headless_gl", "/deps/tests-", "/deps/engine_sequence-")
skip = ("vgpreload", "libc.so", "ld-linux", "libstdc++")
ours, foreign = [], {}
for err in root.iter("error"):
    kind = err.findtext("kind")
    if kind.startswith("Leak_") and kind not in ("Leak_DefinitelyLost", "Leak_PossiblyLost"):
        continue
    frames = [(f.findtext("obj") or "", f.findtext("fn") or "") for f in err.iter("frame")]
    # A leak belongs to whoever called the allocator (the dynamic loader's own mallocs are the
    # loader's); another error to the innermost frame outside libc/loader/libstdc++ routines.
    skipped = ("vgpreload",) if kind.startswith("Leak_") else skip
    owner = next((o for o, _ in frames if not os.path.basename(o).startswith(skipped)), "")
    if not owner and frames:
        owner = frames[0][0]
    if any(m in owner for m in ours_markers):
        ours.append((kind, frames))
    else:
        lib = os.path.basename(owner) or "?"
        foreign[(kind, lib)] = foreign.get((kind, lib), 0) + 1
for (kind, lib), n in sorted(foreign.items()):
    print(f"  not ours: {n} x {kind} (in {lib})")
for kind, frames in ours:
    print(f"  OURS: {kind}")
    for obj, fn in frames[:15]:
        print(f"      {fn}  [{os.path.basename(obj)}]")
print(f"  memcheck: {len(ours)} error(s) in freek4a code, {sum(foreign.values())} elsewhere")
if not case_ok:
    print("  the case itself failed")
sys.exit(0 if case_ok and not ours else 1)
PY
}

vg() {
  local xml=$1
  shift
  valgrind --tool=memcheck --xml=yes --xml-file="$xml" --leak-check=full --num-callers=40 \
    --suppressions=scripts/valgrind-depthengine.supp "$@"
}

status=0
echo "== valgrind: the engine's GLX call sequence on EGL ($seq_exe)"
start=$(date +%s)
seq_ok=1
(
  unset DISPLAY LD_PRELOAD FREEK4A_HEADLESS_GL
  vg "$work/sequence.xml" "$seq_exe" --test-threads=1 >/dev/null 2>&1
) || seq_ok=0
echo "  valgrind run: $(( $(date +%s) - start )) s"
judge "$work/sequence.xml" "$seq_ok" || status=1

if [ "${FREEK4A_VALGRIND_TRANSFORM:-0}" = 1 ]; then
  python=$(bash tests/oracle/install.sh | sed -n 's/^python=//p')
  "$python" tests/oracle/transform.py tests/fixtures/sdk141-mjpg720-nfov-1capture.mkv "$work" >/dev/null
  echo "== valgrind: headless transform engine ($exe)"
  start=$(date +%s)
  (
    unset DISPLAY LD_PRELOAD FREEK4A_HEADLESS_GL
    export FREEK4A_HEADLESS_GL_LIBRARY="$lib"
    export FREEK4A_TEST_GL_CHILD="{\"case\":\"transform\",\"setup\":\"Auto\",\"dir\":\"$work\"}"
    vg "$work/transform.xml" "$exe" --exact headless_gl::child --ignored --test-threads=1 >/dev/null 2>&1
  ) || true
  echo "  valgrind run: $(( $(date +%s) - start )) s"
  ok=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("  case:", json.dumps({k: r.get(k) for k in ("path", "gl_renderer", "error", "repeatable", "output")}), file=sys.stderr)
print(1 if r.get("path") == "headless" and "error" not in r and r.get("output") else 0)
' "$work/report-transform-Auto-false.json" || echo 0)
  judge "$work/transform.xml" "$ok" || status=1
fi
if [ "$status" = 0 ]; then echo "valgrind: clean"; else echo "valgrind: FAILED"; fi
exit "$status"
