#!/usr/bin/env bash
# Builds the release tarballs: k4arecorder and freek4a for Linux on x86_64 and aarch64 (Jetson),
# linked against glibc 2.27 symbols at most (Ubuntu 18.04, Debian 10/11, RHEL 8, JetPack 4 and
# everything newer), debug info split into a separate tarball.
#
#   scripts/release.sh [TARGET...]      default: x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu
#
# Output in dist/: freek4a-VERSION-ARCH-linux.tar.gz (binaries, udev rules, README) and
# freek4a-VERSION-ARCH-linux-debug.tar.gz (the .debug files the binaries' .gnu_debuglink names).
#
# Needs cargo-zigbuild (`cargo install --locked cargo-zigbuild`) and zig (`pip install ziglang`;
# a zig on PATH works too, or set FREEK4A_ZIG_VENV to a venv holding ziglang). A target's Rust
# standard library comes from rustup (`rustup target add TARGET`) or, when rustup has none, from
# Debian's rustc-web packages (`rustc-web` plus `libstd-rust-web-dev:arm64` for aarch64).
# objcopy for the target (binutils, binutils-aarch64-linux-gnu) splits the debug info.
# FREEK4A_RELEASE_REQUIRE_ALL=1 makes a target that cannot be built an error instead of a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

GLIBC=2.27
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
dist=dist
mkdir -p "$dist"
export CARGO_TARGET_DIR="${FREEK4A_RELEASE_TARGET_DIR:-target/dist}"

if [ -n "${FREEK4A_ZIG_VENV:-}" ]; then
  export PATH="$FREEK4A_ZIG_VENV/bin:$PATH"
fi
command -v cargo-zigbuild >/dev/null ||
  { echo "release.sh: cargo-zigbuild is missing: cargo install --locked cargo-zigbuild" >&2; exit 2; }
if ! command -v zig >/dev/null && ! python3 -c 'import ziglang' 2>/dev/null; then
  echo "release.sh: zig is missing: pip install ziglang (or set FREEK4A_ZIG_VENV)" >&2
  exit 2
fi

# Prints the rustc to use for $1, or nothing when no standard library for it is installed.
rustc_for() {
  local t=$1
  if rustup target list --installed 2>/dev/null | grep -qx "$t"; then
    echo "$(rustup which rustc)"
  elif [ -x /usr/bin/rustc ] && [ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/$t/lib" ]; then
    echo /usr/bin/rustc
  fi
}

objcopy_for() {
  local arch=$1
  if command -v "$arch-linux-gnu-objcopy" >/dev/null; then echo "$arch-linux-gnu-objcopy"
  elif [ "$arch" = "$(uname -m)" ]; then echo objcopy
  fi
}

built=()
for t in "${targets[@]}"; do
  arch=${t%%-*}
  rustc=$(rustc_for "$t")
  oc=$(objcopy_for "$arch")
  why=""
  [ -n "$rustc" ] || why="no Rust standard library for $t (rustup target add $t, or Debian's libstd-rust-web-dev:${arch/x86_64/amd64} with rustc-web)"
  [ -n "$oc" ] || why="${why:+$why; }no objcopy for $arch (binutils-$arch-linux-gnu)"
  if [ -n "$why" ]; then
    if [ "${FREEK4A_RELEASE_REQUIRE_ALL:-0}" = 1 ]; then
      echo "release.sh: cannot build $t: $why" >&2; exit 1
    fi
    echo "release.sh: SKIPPED $t: $why" >&2
    continue
  fi
  echo "== $t (glibc $GLIBC, $("$rustc" --version))"
  RUSTC="$rustc" cargo zigbuild --release --locked -p freek4a --bins --target "$t.$GLIBC"
  # The headless OpenGL library the depth engine uses without a display (--headless-gl); the
  # binaries look for it next to themselves.
  RUSTC="$rustc" cargo zigbuild --release --locked -p freek4a-headless-gl --lib --target "$t.$GLIBC"

  name="freek4a-$version-$arch-linux"
  stage="$CARGO_TARGET_DIR/stage/$name"
  rm -rf "$stage" "$stage-debug"
  mkdir -p "$stage" "$stage-debug"
  for bin in k4arecorder freek4a libfreek4a_headless_gl.so; do
    src="$CARGO_TARGET_DIR/$t/release/$bin"
    "$oc" --only-keep-debug "$src" "$stage-debug/$bin.debug"
    "$oc" --strip-debug --add-gnu-debuglink="$stage-debug/$bin.debug" "$src" "$stage/$bin"
    printf '%s: %s bytes with debug info, %s stripped\n' "$bin" "$(stat -c %s "$src")" "$(stat -c %s "$stage/$bin")"
  done
  cp udev/70-freek4a.rules "$stage/"
  cat >"$stage/README.txt" <<README
freek4a $version for Linux on $arch (needs glibc $GLIBC or newer: Ubuntu 18.04+, Debian 10+,
RHEL 8+, NVIDIA JetPack 4+)

  k4arecorder   drop-in replacement for Microsoft's Azure Kinect recorder (same options)
  freek4a       toolbox: record, list, info, extract, repair, udev

Try it without a camera:       ./k4arecorder --emulate -l 5 out.mkv && ./freek4a info out.mkv
Give users access to the camera (then re-plug it):
  sudo cp 70-freek4a.rules /etc/udev/rules.d/ && sudo udevadm control --reload-rules
  (or: sudo ./freek4a udev install)
Depth from a real camera needs Microsoft's depth engine, libdepthengine.so.2.0 (Debian package
libk4a1.4, or the pyk4a-bundle wheel on PyPI); point --depth-engine PATH or
FREEK4A_DEPTH_ENGINE at it. --emulate needs nothing else.
Without an X display the engine runs on EGL through libfreek4a_headless_gl.so (keep it next to
the binaries; needs libEGL, e.g. Debian's libegl1 with Mesa or the GPU vendor's driver);
--headless-gl chooses it even when a display exists.

Debug info for these binaries: $name-debug.tar.gz (unpack next to them for gdb).
README
  tar -C "$(dirname "$stage")" -czf "$dist/$name.tar.gz" "$name"
  tar -C "$stage-debug" -czf "$dist/$name-debug.tar.gz" .
  built+=("$dist/$name.tar.gz")
done
[ ${#built[@]} -gt 0 ] || { echo "release.sh: nothing built" >&2; exit 1; }
printf 'built %s\n' "${built[@]}"
