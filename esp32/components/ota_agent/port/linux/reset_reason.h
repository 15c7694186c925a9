// Why this "boot" of the Linux device happened, in esp_reset_reason() terms, kept in the state
// directory like the chip keeps it in RTC memory: a reboot the program makes itself is `software`,
// a crash signal (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL) is `panic`, and a death that wrote
// nothing (kill -9, the host losing power) reads as `poweron`, as a power cut does on the chip.
#pragma once

#include <string>

namespace mqota::linux_port {

// Reads the reason left by the previous run (`poweron` if none), records `poweron` for the next
// one, and installs the crash-signal handlers. Call once at start.
const char* take_reset_reason(const std::string& state_dir);

// Records why the next boot happens (`software` before a reboot, `panic` before a simulated
// crash). Async-signal-safe.
void note_reset_reason(const char* reason);

}  // namespace mqota::linux_port
