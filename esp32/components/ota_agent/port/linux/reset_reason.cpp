#include "reset_reason.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

namespace mqota::linux_port {
namespace {

// The names of docs/protocol.md#health this port can produce.
constexpr const char* kReasons[] = {"poweron", "software", "panic"};
constexpr int kCrashSignals[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL};

char g_path[4096];  // written once before the handlers exist; read by them

void on_crash(int sig) {
    note_reset_reason("panic");
    signal(sig, SIG_DFL);  // then die of it, as before
    raise(sig);
}

}  // namespace

void note_reset_reason(const char* reason) {
    if (g_path[0] == '\0') {
        return;
    }
    const int fd = open(g_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return;
    }
    const ssize_t n = write(fd, reason, strlen(reason));
    (void)n;
    close(fd);
}

const char* take_reset_reason(const std::string& state_dir) {
    snprintf(g_path, sizeof(g_path), "%s/reset_reason", state_dir.c_str());
    const char* reason = kReasons[0];
    char buf[32] = {};
    const int fd = open(g_path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        const ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        for (const char* known : kReasons) {
            if (strcmp(buf, known) == 0) {
                reason = known;
            }
        }
    }
    note_reset_reason("poweron");
    for (int sig : kCrashSignals) {
        signal(sig, on_crash);
    }
    return reason;
}

}  // namespace mqota::linux_port
