#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

namespace mqota::linux_port {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::info)};

char level_letter(LogLevel level) {
    switch (level) {
        case LogLevel::error: return 'E';
        case LogLevel::warn: return 'W';
        case LogLevel::info: return 'I';
        case LogLevel::debug: return 'D';
    }
    return '?';
}

}  // namespace

bool parse_log_level(const char* text, LogLevel* out) {
    static const struct {
        const char* name;
        LogLevel level;
    } kLevels[] = {{"error", LogLevel::error}, {"warn", LogLevel::warn}, {"info", LogLevel::info}, {"debug", LogLevel::debug}};
    for (const auto& l : kLevels) {
        if (strcmp(text, l.name) == 0) {
            *out = l.level;
            return true;
        }
    }
    return false;
}

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }

void log_line(LogLevel level, const char* component, const char* format, ...) {
    if (static_cast<int>(level) > g_level) {
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    struct tm utc;
    gmtime_r(&tv.tv_sec, &utc);
    char line[1024];
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %c %s: ", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     static_cast<int>(tv.tv_usec / 1000), level_letter(level), component);
    va_list args;
    va_start(args, format);
    const int m = vsnprintf(line + n, sizeof(line) - static_cast<size_t>(n) - 1, format, args);
    va_end(args);
    n += m < 0 ? 0 : (m >= static_cast<int>(sizeof(line)) - n - 1 ? static_cast<int>(sizeof(line)) - n - 2 : m);
    // One event, one line: newlines inside a message would break line-oriented readers.
    for (int i = 0; i < n; ++i) {
        if (line[i] == '\n' || line[i] == '\r') {
            line[i] = ' ';
        }
    }
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, static_cast<size_t>(n));
    (void)ignored;
}

}  // namespace mqota::linux_port
