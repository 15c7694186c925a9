#!/bin/sh
# `npm start` and the container: node with the flags mqota is tuned for (src/heap-tuning.ts keeps
# them in step with this line) and, where libjemalloc2 is installed, jemalloc as the allocator.
# With thousands of TLS connections glibc's malloc keeps freed memory scattered over its arenas:
# 37-38 KiB of server memory per connected device against 26-27 KiB with jemalloc, and 30 MiB more
# at rest (npm run bench, 5,000 devices; bench/README.md, "The allocator"). MQOTA_ALLOCATOR=glibc
# keeps glibc's malloc; an LD_PRELOAD already set is left alone, and so is a MALLOC_CONF.
dir=$(dirname "$0")
if [ "${MQOTA_ALLOCATOR:-jemalloc}" != glibc ] && [ -z "${LD_PRELOAD:-}" ]; then
  found=$(sh "$dir/jemalloc.sh")
  if [ -n "$found" ]; then
    LD_PRELOAD=$(echo "$found" | sed -n 1p)
    MALLOC_CONF=${MALLOC_CONF:-$(echo "$found" | sed -n 2p)}
    export LD_PRELOAD MALLOC_CONF
  fi
fi
exec node --max-semi-space-size=2 --v8-pool-size=1 --liftoff-only "$dir/start.js" "$@"
