#!/usr/bin/env bash
# Install the Debian packages qtune needs (only the missing ones), then
# configure and build into build/ (or $QT_BUILD_DIR).
#   scripts/setup.sh                 # release build
#   scripts/setup.sh --sanitize      # AddressSanitizer + UBSan build in build-asan/
#   scripts/setup.sh --fuzz          # clang + libFuzzer build of tests/fuzz in build-fuzz/
# Idempotent and quiet when everything is there. Needs root to install.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config
      libsqlite3-dev sqlite3 libuv1-dev libjansson-dev libcmocka-dev
      zlib1g-dev libopenblas-dev libprotobuf-c-dev protobuf-c-compiler
      libmpfr-dev libgmp-dev
      dataset-fashion-mnist libonnx-dev libonnx-testdata
      python3 python3-torch)
mode=${1:-}
[ "$mode" = "--fuzz" ] && PKGS+=(clang libclang-rt-14-dev libomp-14-dev)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$mode" = "--fuzz" ]; then
  dir=${QT_BUILD_DIR:-build-fuzz}
  CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQT_FUZZ=ON >/dev/null
  cmake --build "$dir" -j2 --target fuzz_onnx -- --no-print-directory \
    | grep -Ev '^\[ *[0-9]+%\] (Building|Linking|Built)' || true
  test "${PIPESTATUS[0]}" = 0
  exit 0
fi
if [ "$mode" = "--sanitize" ]; then
  dir=${QT_BUILD_DIR:-build-asan}
  cfg=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DQT_SANITIZE=address,undefined)
else
  dir=${QT_BUILD_DIR:-build}
  cfg=(-DCMAKE_BUILD_TYPE=Release)
fi
[ -n "${CI:-}" ] && cfg+=(-DQT_WERROR=ON)
cmake -S . -B "$dir" "${cfg[@]}" >/dev/null
cmake --build "$dir" -j2 -- --no-print-directory | grep -Ev '^\[ *[0-9]+%\] (Building|Linking|Built)' || true
test "${PIPESTATUS[0]}" = 0
