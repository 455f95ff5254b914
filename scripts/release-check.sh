#!/usr/bin/env bash
# CI's check of the release binaries: installs what scripts/release.sh needs (idempotent), builds
# the x86_64 and aarch64 tarballs, checks that no binary needs a glibc symbol newer than 2.27,
# and runs them from the unpacked tarballs: x86_64 natively, aarch64 under qemu-user.
# Each binary must print its help and record one second from an emulated unit with depth.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_GLIBC=2.27
tools="${FREEK4A_TOOLS_DIR:-$HOME/.cache/freek4a-release}"
export DEBIAN_FRONTEND=noninteractive

# Debian packages: objdump/objcopy for both architectures, qemu-user, and Debian's rustc-web with
# its aarch64 standard library (rustup cannot add targets without its download server).
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  apt-get update -q </dev/null
fi
need=()
for pkg in binutils binutils-aarch64-linux-gnu qemu-user rustc-web libstd-rust-web-dev:arm64; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -q </dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" </dev/null
fi
# zig from PyPI, cargo-zigbuild from crates.io.
if [ ! -x "$tools/zig-venv/bin/python" ]; then
  python3 -m venv "$tools/zig-venv"
fi
"$tools/zig-venv/bin/python" -c 'import ziglang' 2>/dev/null ||
  "$tools/zig-venv/bin/pip" install -q 'ziglang==0.17.1' </dev/null
command -v cargo-zigbuild >/dev/null || cargo install --locked cargo-zigbuild --version 0.24.1 </dev/null

FREEK4A_ZIG_VENV="$tools/zig-venv" FREEK4A_RELEASE_REQUIRE_ALL=1 bash scripts/release.sh </dev/null

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
for arch in x86_64 aarch64; do
  name="freek4a-$version-$arch-linux"
  tar -C "$work" -xzf "dist/$name.tar.gz"
  dir="$work/$name"
  for f in k4arecorder freek4a libfreek4a_headless_gl.so 70-freek4a.rules README.txt; do
    [ -e "$dir/$f" ] || { echo "FAIL: $name.tar.gz lacks $f"; fail=1; }
  done
  objdump=objdump
  [ "$arch" = x86_64 ] || objdump="$arch-linux-gnu-objdump"
  for bin in k4arecorder freek4a libfreek4a_headless_gl.so; do
    newest=$("$objdump" -T "$dir/$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
    size=$(stat -c %s "$dir/$bin")
    if [ "$(printf '%s\n%s\n' "$newest" "$MAX_GLIBC" | sort -V | tail -n1)" != "$MAX_GLIBC" ]; then
      echo "FAIL: $arch $bin needs GLIBC_$newest (> $MAX_GLIBC)"; fail=1
    else
      echo "ok: $arch $bin needs at most GLIBC_$newest, $size bytes"
    fi
    if "$objdump" -h "$dir/$bin" | grep -q '\.debug_info'; then
      echo "FAIL: $arch $bin still carries debug info"; fail=1
    fi
  done
  run=()
  if [ "$arch" = aarch64 ]; then
    if ! command -v qemu-aarch64 >/dev/null; then
      echo "FAIL: qemu-aarch64 is missing (apt-get install qemu-user)"; fail=1; continue
    fi
    # The aarch64 loader and libc come from Debian's arm64 packages (multiarch, rooted at /).
    run=(qemu-aarch64 -L /)
  fi
  if ! "${run[@]}" "$dir/k4arecorder" --help >"$work/help.txt" 2>&1 || ! grep -q 'output.mkv' "$work/help.txt"; then
    echo "FAIL: $arch k4arecorder --help"; cat "$work/help.txt"; fail=1
  fi
  out="$work/$arch.mkv"
  if ! (cd "$work" && env -u FREEK4A_EMULATE -u FREEK4A_DEPTH_ENGINE \
        "${run[@]}" "$dir/k4arecorder" --no-progress --emulate -l 1 "$out" >"$work/rec.txt" 2>&1); then
    echo "FAIL: $arch k4arecorder --emulate -l 1"; cat "$work/rec.txt"; fail=1; continue
  fi
  # Depth must be there: the emulated engine is part of the binary.
  if ! "${run[@]}" "$dir/freek4a" info "$out" >"$work/info.txt" 2>&1 ||
     ! grep -Eq '^Captures: +[1-9][0-9]* \(colour [1-9][0-9]*, depth [1-9][0-9]*, IR [1-9][0-9]*\)' "$work/info.txt"; then
    echo "FAIL: $arch recording lacks captures with colour, depth and IR"; cat "$work/info.txt"; fail=1
  else
    echo "ok: $arch $(grep '^Captures:' "$work/info.txt")"
  fi
  # The headless OpenGL library next to the binaries loads and reaches EGL (x86_64 has Mesa's;
  # under qemu there is no arm64 libEGL, so only the library's own loading is checked).
  (cd "$work" && env -u FREEK4A_EMULATE -u FREEK4A_HEADLESS_GL_LIBRARY -u DISPLAY \
    "${run[@]}" "$dir/k4arecorder" --no-progress --emulate --headless-gl -l 1 "$work/$arch-gl.mkv" \
    >"$work/gl.txt" 2>&1) || { echo "FAIL: $arch k4arecorder --headless-gl"; cat "$work/gl.txt"; fail=1; }
  gl_line=$(grep '^Depth engine OpenGL:' "$work/gl.txt" || true)
  if [ "$arch" = x86_64 ]; then
    case "$gl_line" in
      "Depth engine OpenGL: headless (EGL"*) echo "ok: $arch ${gl_line}" ;;
      *) echo "FAIL: $arch headless OpenGL did not come up: ${gl_line:-no line}"; fail=1 ;;
    esac
  elif [ -z "$gl_line" ] || grep -q "cannot load $dir/libfreek4a_headless_gl.so" <<<"$gl_line"; then
    echo "FAIL: $arch libfreek4a_headless_gl.so does not load: ${gl_line:-no line}"; fail=1
  else
    echo "ok: $arch headless library loads (${gl_line})"
  fi
done
[ "$fail" = 0 ] && echo "release check passed" || { echo "release check FAILED"; exit 1; }
