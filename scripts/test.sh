#!/usr/bin/env bash
# `npm test`: type check, the server's tests over the real network stack (TLS broker, HTTPS,
# PGlite and PostgreSQL), and the ESP32 agent's host tests (CMake + ctest) including the
# end-to-end updates of the Linux device against a real mqota.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v cmake >/dev/null || missing+=(cmake)
[ -d /usr/lib/postgresql ] || [ -n "${MQOTA_TEST_DATABASE_URL:-}" ] || missing+=(postgresql)
[ -f /usr/include/mosquitto.h ] || missing+=(libmosquitto-dev)
[ -f /usr/include/cjson/cJSON.h ] || missing+=(libcjson-dev)
[ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
[ -d /usr/include/gtest ] || missing+=(libgtest-dev)
command -v chromium >/dev/null || missing+=(chromium)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing test prerequisites: ${missing[*]}"
    bash scripts/install-test-deps.sh
  else
    echo "missing test prerequisites: ${missing[*]}; run: sudo bash scripts/install-test-deps.sh" >&2
    exit 1
  fi
fi

echo "── type check"
npx tsc --noEmit

echo "── ESP32 agent: host build and unit tests"
bash esp32/host/test.sh

echo "── server, broker and end-to-end tests"
node --import tsx --test --test-concurrency=1 tests/*.test.ts
