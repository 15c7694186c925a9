#include "file_kv_store.h"

#include <string.h>
#include <unistd.h>

#include <sstream>

#include "file_util.h"

namespace mqota::linux_port {
namespace {

constexpr size_t kMaxKeyLen = 15;  // NVS_KEY_NAME_MAX_SIZE - 1
constexpr size_t kMaxFileBytes = 1 << 20;

bool valid_key(const std::string& key) {
    if (key.empty() || key.size() > kMaxKeyLen) {
        return false;
    }
    for (const char c : key) {
        if (c <= ' ' || c > '~') {
            return false;
        }
    }
    return true;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

FileKvStore::FileKvStore(std::string path) : path_(std::move(path)) {}

bool FileKvStore::load(std::string* error) {
    values_.clear();
    if (access(path_.c_str(), F_OK) != 0) {
        return true;
    }
    std::string text;
    if (!read_text_file(path_, &text, kMaxFileBytes)) {
        *error = "cannot read " + path_;
        return false;
    }
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty()) {
            continue;
        }
        const size_t space = line.find(' ');
        const std::string key = line.substr(0, space);
        const std::string hex = space == std::string::npos ? "" : line.substr(space + 1);
        std::vector<uint8_t> value;
        bool ok = valid_key(key) && hex.size() % 2 == 0;
        for (size_t i = 0; ok && i < hex.size(); i += 2) {
            const int hi = hex_digit(hex[i]);
            const int lo = hex_digit(hex[i + 1]);
            ok = hi >= 0 && lo >= 0;
            value.push_back(static_cast<uint8_t>(hi << 4 | lo));
        }
        if (!ok) {
            *error = path_ + ": malformed line";
            values_.clear();
            return false;
        }
        values_[key] = std::move(value);
    }
    return true;
}

bool FileKvStore::read(const std::string& key, void* buf, size_t cap, size_t* len) const {
    const auto it = values_.find(key);
    if (it == values_.end() || it->second.size() > cap) {
        return false;
    }
    if (!it->second.empty()) {
        memcpy(buf, it->second.data(), it->second.size());
    }
    *len = it->second.size();
    return true;
}

bool FileKvStore::write(const std::string& key, const void* data, size_t len, std::string* error) {
    if (!valid_key(key)) {
        *error = "invalid key " + key;
        return false;
    }
    const auto* p = static_cast<const uint8_t*>(data);
    values_[key].assign(p, p + len);
    return save(error);
}

bool FileKvStore::erase(const std::string& key, std::string* error) {
    if (values_.erase(key) == 0) {
        return true;
    }
    return save(error);
}

bool FileKvStore::save(std::string* error) {
    static const char kHex[] = "0123456789abcdef";
    std::string text;
    for (const auto& [key, value] : values_) {
        text += key;
        text += ' ';
        for (const uint8_t b : value) {
            text += kHex[b >> 4];
            text += kHex[b & 0x0f];
        }
        text += '\n';
    }
    return write_file_atomic(path_, text.data(), text.size(), error);
}

}  // namespace mqota::linux_port
