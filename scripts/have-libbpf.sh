#!/bin/sh
# Prints 1 when libbpf can be compiled against and linked (libbpf-dev), else 0.
# binding.gyp asks this at install: the tcpstates source is built only then.
printf '#include <bpf/libbpf.h>\nint main(void){return libbpf_major_version() > 0 ? 0 : 1;}\n' |
  ${CC:-cc} -x c - -o /dev/null -lbpf >/dev/null 2>&1 && echo 1 || echo 0
