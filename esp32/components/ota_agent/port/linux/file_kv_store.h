// The NVS stand-in of the Linux port: one text file, one "key hex-value" line per key, replaced
// atomically on every write (nvs_set_blob + nvs_commit). Keys follow NVS rules (1-15 chars).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <map>
#include <string>
#include <vector>

namespace mqota::linux_port {

class FileKvStore {
public:
    explicit FileKvStore(std::string path);

    bool load(std::string* error);  // a missing file is an empty store
    bool read(const std::string& key, void* buf, size_t cap, size_t* len) const;
    bool write(const std::string& key, const void* data, size_t len, std::string* error);
    bool erase(const std::string& key, std::string* error);

private:
    bool save(std::string* error);

    std::string path_;
    std::map<std::string, std::vector<uint8_t>> values_;
};

}  // namespace mqota::linux_port
