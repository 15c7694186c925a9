// Small POSIX file helpers for the Linux port.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <vector>

namespace mqota::linux_port {

// Reads at most max_bytes from the start of the file. False if it cannot be opened or read.
bool read_file(const std::string& path, std::vector<uint8_t>* out, size_t max_bytes);
bool read_text_file(const std::string& path, std::string* out, size_t max_bytes);

// Replaces the file atomically: write a temporary file, fsync it, rename it over the target,
// fsync the directory. A reader (or a crash) sees the old or the new content, never a mix.
bool write_file_atomic(const std::string& path, const void* data, size_t len, std::string* error);

bool write_all(int fd, const void* data, size_t len);

}  // namespace mqota::linux_port
