#!/bin/sh
# Builds the CO-RE BPF object(s) with clang at install: build-bpf.sh OUTDIR.
# Without clang or libbpf's headers it says so and builds nothing (the
# tcpstates source then fails with one line naming what is missing); it
# never fails the install.
out="${1:-build/Release}"
cd "$(dirname "$0")/.." || exit 0
mkdir -p "$out"
if ! command -v clang >/dev/null 2>&1; then
  echo "build-bpf.sh: clang not found: the tcpstates source is not built (apt-get install clang libbpf-dev, then npm rebuild)" >&2
  exit 0
fi
if [ ! -f /usr/include/bpf/bpf_helpers.h ]; then
  echo "build-bpf.sh: libbpf's headers not found: the tcpstates source is not built (apt-get install libbpf-dev, then npm rebuild)" >&2
  exit 0
fi
arch=$(uname -m)
case "$arch" in x86_64) t=x86 ;; aarch64) t=arm64 ;; *) t="$arch" ;; esac
multi=$(${CC:-cc} -print-multiarch 2>/dev/null)
for src in bpf/*.bpf.c; do
  obj="$out/$(basename "$src" .c).o"
  if ! clang -O2 -g -target bpf -D__TARGET_ARCH_"$t" ${multi:+-I/usr/include/$multi} -c "$src" -o "$obj.tmp"; then
    echo "build-bpf.sh: $src did not compile: the tcpstates source is not built" >&2
    rm -f "$obj.tmp"
    exit 0
  fi
  mv "$obj.tmp" "$obj"
done
