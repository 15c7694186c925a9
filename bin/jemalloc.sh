#!/bin/sh
# Where jemalloc is installed (Debian and Ubuntu: apt-get install libjemalloc2; Fedora: jemalloc):
# prints its shared library's path, then the MALLOC_CONF mqota runs it with; else nothing.
# bin/start.sh preloads it; the bench asks here too, so both run the same allocator.
#
# The settings: a background thread returns freed pages after 1 s, even while the service is idle
# and allocates nothing (jemalloc otherwise purges only as a side effect of allocating): a restart
# at rest holds 176 MiB instead of 194-203 MiB (bench/README.md, "The allocator"). And the thread
# cache keeps blocks up to 64 KiB (by default it stops at 32 KiB): Node allocates a 64 KiB buffer
# for every socket read, which jemalloc otherwise serves from its large extents each time; an
# 18,500-device fan-out took 11-13 s so, 7.9 s with the cache (glibc 7.8 s).
for lib in /usr/lib/*-linux-gnu/libjemalloc.so.2 /usr/lib64/libjemalloc.so.2 /usr/lib/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2; do
  if [ -e "$lib" ]; then
    echo "$lib"
    echo "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,tcache_max:65536"
    exit 0
  fi
done
