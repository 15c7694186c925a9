#!/bin/sh
# `npm start` and the container: node with the flags mqota is tuned for (src/heap-tuning.ts keeps
# them in step with this line) and, where libjemalloc2 is installed, jemalloc as the allocator.
# With thousands of TLS connections glibc's malloc keeps freed memory scattered over its arenas:
# 37-38 KiB of server memory per connected device against 26-27 KiB with jemalloc, and 30 MiB more
# at rest (npm run bench, 5,000 devices; bench/README.md, "The allocator"). MQOTA_ALLOCATOR=glibc
# keeps glibc's malloc; an LD_PRELOAD already set is left alone.
dir=$(dirname "$0")
if [ "${MQOTA_ALLOCATOR:-jemalloc}" != glibc ] && [ -z "${LD_PRELOAD:-}" ]; then
  lib=$(sh "$dir/jemalloc.sh")
  if [ -n "$lib" ]; then
    LD_PRELOAD=$lib
    export LD_PRELOAD
  fi
fi
exec node --max-semi-space-size=2 --v8-pool-size=1 "$dir/start.js" "$@"
