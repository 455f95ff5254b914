#!/usr/bin/env bash
# Side by side through Linux's usbfs interface (freek4a-usbfs), same emulated unit, same
# supervisor: CPU seconds per recorded second of our k4arecorder and of Microsoft's libk4a +
# libk4arecord driven by a small capture-and-write loop (tests/oracle/libk4a_record.py), in the
# heaviest colour + IMU mode (3072p MJPG at 15 fps, depth off: Microsoft's engine refuses the
# emulated depth calibration). Rounds are interleaved; prints every round, best and median of
# the ratio, and the load average. Then (unless HEAVY=0) 60 s of 3072p@15 + WFOV_UNBINNED@15 +
# IMU in real time through our recorder, with its drops and the supervisor's CPU share.
#
#   scripts/usbfs-bench.sh [ROUNDS] [SECONDS]     (FREEK4A_ORACLE_VENV selects the oracle venv)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-10}
cargo build --release -q -p freek4a --bins
cargo build --release -q -p freek4a-usbfs -p freek4a-emulated-depthengine
eval "$(bash tests/oracle/install.sh | grep '^python=')"
tool=$PWD/target/release/freek4a-usbfs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cpu() { sed -n 's/^freek4a-usbfs: cpu program=\([0-9.]*\) supervisor=\([0-9.]*\)$/\1 \2/p' "$1"; }
results=()
for r in $(seq 1 "$rounds"); do
  "$tool" --report-cpu --emulate seed=$r -- target/release/k4arecorder -c 3072p -r 15 -d OFF \
    --imu ON -l "$secs" "$work/ours.mkv" >/dev/null 2>"$work/ours.err"
  read -r ours ours_sup < <(cpu "$work/ours.err")
  "$tool" --report-cpu --emulate seed=$r -- "$python" tests/oracle/libk4a_record.py "$work/theirs.mkv" \
    3072P MJPG OFF 15 "$secs" 1 >"$work/theirs.json" 2>"$work/theirs.err"
  read -r theirs theirs_sup < <(cpu "$work/theirs.err")
  echo "round $r: ours ${ours} CPU s (supervisor ${ours_sup}), libk4a+libk4arecord ${theirs} CPU s (supervisor ${theirs_sup}) for ${secs} s; $(cat "$work/theirs.json")"
  results+=("$ours $theirs")
  rm -f "$work"/*.mkv
done
printf '%s\n' "${results[@]}" | python3 -c "
import statistics, sys
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
ratios = sorted(o / t for o, t in rows)
secs = float('$secs')
print(f'CPU s per recorded s: ours best {min(o for o, _ in rows) / secs:.4f}, libk4a best {min(t for _, t in rows) / secs:.4f}')
print(f'ratio ours / libk4a+libk4arecord: best {ratios[0]:.3f}, median {statistics.median(ratios):.3f} ({len(rows)} rounds)')
"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${HEAVY:-1}" != 0 ]; then
  FREEK4A_DEPTH_ENGINE=$PWD/target/release/libfreek4a_emulated_depthengine.so \
    /usr/bin/time -f 'wall %e s' "$tool" --report-cpu --emulate seed=1 -- target/release/k4arecorder \
    -c 3072p -r 15 -d WFOV_UNBINNED --imu ON -l 60 "$work/heavy.mkv" >"$work/heavy.out" 2>"$work/heavy.err"
  read -r prog sup < <(cpu "$work/heavy.err")
  echo "heavy 60 s (3072p@15 + WFOV_UNBINNED@15 + IMU, real time): $(grep '^wall' "$work/heavy.err"), recorder ${prog} CPU s, supervisor + emulated unit ${sup} CPU s ($(python3 -c "print(f'{$sup / 60 * 100:.1f}')") % of one core)"
  target/release/freek4a info "$work/heavy.mkv" | grep -iE 'captures|drop|imu' || true
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
