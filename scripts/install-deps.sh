#!/usr/bin/env bash
# Installs what building tessera needs and a fresh machine may lack: clang and libclang
# (bindgen generates RocksDB's bindings at build time), and iptables (tests/health.rs cuts
# a node off with it; the test says it skipped where iptables cannot run). Does nothing
# when all are present.
set -euo pipefail

# iptables: best effort, never fatal (the partition test skips without it).
if ! command -v iptables >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: installing iptables (the partition test of tests/health.rs)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null 2>&1 \
        || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null 2>&1; } \
        || echo "install-deps: iptables could not be installed; the partition test will skip" >&2
fi

have_libclang() {
    ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1
}

if command -v clang >/dev/null 2>&1 && have_libclang; then
    exit 0
fi

echo "install-deps: installing clang and libclang-dev (needed by RocksDB's bindings)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-deps: not root and no sudo; install clang and libclang-dev by hand" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq clang libclang-dev >/dev/null
