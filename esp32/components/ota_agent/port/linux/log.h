// One logger for the Linux port and the agent: one line per event on stderr,
//   2025-01-31T12:00:00.123Z I agent: update u_1 accepted: thermostat 1.3.0, 1048576 bytes
// written with a single write(2) so lines of concurrent threads never interleave.
#pragma once

#include "ota_agent/platform.h"

namespace mqota::linux_port {

bool parse_log_level(const char* text, LogLevel* out);  // error|warn|info|debug
void set_log_level(LogLevel level);
void log_line(LogLevel level, const char* component, const char* format, ...)
    __attribute__((format(printf, 3, 4)));

}  // namespace mqota::linux_port
