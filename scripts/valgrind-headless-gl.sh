#!/usr/bin/env bash
# Runs the headless transform-engine case (the child process of tests/headless_gl.rs: no
# DISPLAY, Microsoft's transform engine from pyk4a-bundle through freek4a's binding, its OpenGL
# context from libfreek4a_headless_gl.so on Mesa's llvmpipe) under valgrind memcheck.
#
# An error belongs to the code of its innermost frame outside libc, the dynamic loader and
# valgrind's own allocator (for a leak: the code that called the allocator). The script fails
# when any memcheck error, or any definite/possible leak, belongs to libfreek4a_headless_gl.so
# or to freek4a's code (the test binary), or when the case itself did not produce its image.
# Errors that belong to Mesa, LLVM's JIT code, the GL dispatch libraries or the closed engine
# are counted and listed by library, not failed on: they are not ours to fix.
#
# Needs the SDK oracle (tests/oracle/install.sh) for the engine and the test inputs.
# Usage: scripts/valgrind-headless-gl.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }

exe=$(cargo test --release --workspace --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "tests":
        print(m["executable"])
')
[ -n "$exe" ] || { echo "could not build the test binary" >&2; exit 2; }
lib="$(dirname "$(dirname "$exe")")/libfreek4a_headless_gl.so"
[ -f "$lib" ] || { echo "$lib was not built" >&2; exit 2; }

python=$(bash tests/oracle/install.sh | sed -n 's/^python=//p')
work=$(mktemp -d "${TMPDIR:-/tmp}/freek4a-vg-gl.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$python" tests/oracle/transform.py tests/fixtures/sdk141-mjpg720-nfov-1capture.mkv "$work" >/dev/null

echo "== valgrind: headless transform engine ($exe)" >&2
start=$(date +%s)
env -u DISPLAY -u LD_PRELOAD -u FREEK4A_HEADLESS_GL \
  FREEK4A_HEADLESS_GL_LIBRARY="$lib" \
  FREEK4A_TEST_GL_CHILD="{\"case\":\"transform\",\"setup\":\"Auto\",\"dir\":\"$work\"}" \
  valgrind --tool=memcheck --xml=yes --xml-file="$work/memcheck.xml" --leak-check=full \
    --num-callers=40 "$exe" --exact headless_gl::child --ignored --test-threads=1 >/dev/null
echo "valgrind run: $(( $(date +%s) - start )) s" >&2

python3 - "$work" <<'EOF'
import json, os, sys
import xml.etree.ElementTree as ET
work = sys.argv[1]
report = json.load(open(os.path.join(work, "report-transform-Auto-false.json")))
print("case report:", json.dumps({k: report.get(k) for k in ("path", "gl_renderer", "error", "repeatable", "output", "stats")}))
ok_case = report.get("path") == "headless" and "error" not in report and report.get("output")
root = ET.parse(os.path.join(work, "memcheck.xml")).getroot()
ours_markers = ("libfreek4a_headless_gl", "/deps/tests-")
ours, foreign = [], {}
for err in root.iter("error"):
    kind = err.findtext("kind")
    frames = [(f.findtext("obj") or "", f.findtext("fn") or "") for f in err.iter("frame")]
    if kind.startswith("Leak_") and kind not in ("Leak_DefinitelyLost", "Leak_PossiblyLost"):
        continue
    skip = ("vgpreload", "libc.so", "ld-linux", "libstdc++")
    owner = next((o for o, _ in frames if not os.path.basename(o).startswith(skip)), "")
    if any(m in owner for m in ours_markers):
        ours.append((kind, frames))
    else:
        lib = os.path.basename(owner) or "?"
        foreign[(kind, lib)] = foreign.get((kind, lib), 0) + 1
for (kind, lib), n in sorted(foreign.items()):
    print(f"not ours: {n} x {kind} (innermost object {lib})")
for kind, frames in ours:
    print(f"OURS: {kind}")
    for obj, fn in frames[:15]:
        print(f"    {fn}  [{os.path.basename(obj)}]")
print(f"memcheck: {len(ours)} error(s) with a frame in freek4a code, {sum(foreign.values())} elsewhere")
if not ok_case:
    print("the headless case did not produce its image")
sys.exit(0 if ok_case and not ours else 1)
EOF
