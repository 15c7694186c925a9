#!/usr/bin/env bash
# Builds the device side for the host and runs its tests: the agent core's unit tests and the
# end-to-end tests of mqota-linux-device (against a local mosquitto broker with mutual TLS).
#
# Debian 12 packages: g++ cmake libcjson-dev libmosquitto-dev libcurl4-openssl-dev libssl-dev
#                     libgtest-dev mosquitto
# The program for the server's end-to-end tests ends up in $build/mqota-linux-device.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${MQOTA_DEVICE_BUILD_DIR:-$here/build}

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"${MQOTA_BUILD_JOBS:-2}"
cd "$build"
ctest --output-on-failure
