#!/usr/bin/env bash
# Debian/Ubuntu packages the tests need: PostgreSQL (a throwaway cluster per run), the
# toolchain, libraries and mosquitto broker of the ESP32 agent's Linux port and its tests (Mosquitto is
# also the external broker of tests/external-broker.test.ts and tests/acl-matrix.test.ts),
# Chromium (with a font, for readable screenshots) for the dashboard's browser tests, and
# bash-completion, which the CLI's generated bash completion script builds on; and jemalloc, which
# npm start preloads (tests/heap-tuning.test.ts checks the launcher with it installed).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  postgresql cmake make g++ pkg-config \
  libmosquitto-dev libcjson-dev libcurl4-openssl-dev libssl-dev libgtest-dev mosquitto openssl \
  chromium fonts-liberation bash-completion libjemalloc2 >/dev/null
# The Debian package starts a system mosquitto on :1883; the tests start their own brokers.
if command -v systemctl >/dev/null && systemctl is-active --quiet mosquitto 2>/dev/null; then systemctl stop mosquitto || true; fi
