#!/bin/sh
# Prints the path of jemalloc's shared library when it is installed (Debian and Ubuntu: apt-get
# install libjemalloc2; Fedora: jemalloc), else nothing. bin/start.sh preloads it; the bench asks
# here too, so both choose the same allocator.
for lib in /usr/lib/*-linux-gnu/libjemalloc.so.2 /usr/lib64/libjemalloc.so.2 /usr/lib/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2; do
  if [ -e "$lib" ]; then
    echo "$lib"
    exit 0
  fi
done
