#include "file_util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

namespace mqota::linux_port {

bool read_file(const std::string& path, std::vector<uint8_t>* out, size_t max_bytes) {
    out->clear();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    uint8_t buf[16384];
    bool ok = true;
    while (out->size() < max_bytes) {
        const size_t want = max_bytes - out->size() < sizeof(buf) ? max_bytes - out->size() : sizeof(buf);
        const ssize_t n = ::read(fd, buf, want);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            ok = false;
            break;
        }
        if (n == 0) {
            break;
        }
        out->insert(out->end(), buf, buf + n);
    }
    ::close(fd);
    return ok;
}

bool read_text_file(const std::string& path, std::string* out, size_t max_bytes) {
    std::vector<uint8_t> data;
    if (!read_file(path, &data, max_bytes)) {
        return false;
    }
    out->assign(data.begin(), data.end());
    return true;
}

bool write_all(int fd, const void* data, size_t len) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    while (len > 0) {
        const ssize_t n = ::write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

bool write_file_atomic(const std::string& path, const void* data, size_t len, std::string* error) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        *error = tmp + ": " + strerror(errno);
        return false;
    }
    const bool written = write_all(fd, data, len) && fsync(fd) == 0;
    const int saved_errno = errno;
    ::close(fd);
    if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
        *error = path + ": " + strerror(written ? errno : saved_errno);
        ::unlink(tmp.c_str());
        return false;
    }
    const size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
        fsync(dir_fd);
        ::close(dir_fd);
    }
    return true;
}

}  // namespace mqota::linux_port
