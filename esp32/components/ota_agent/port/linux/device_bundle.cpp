#include "device_bundle.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cJSON.h"
#include "file_util.h"
#include "ota_agent/protocol.h"

namespace mqota::linux_port {
namespace {

bool json_string(const cJSON* root, const char* name, std::string* out) {
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!cJSON_IsString(item) || item->valuestring == nullptr || item->valuestring[0] == '\0') {
        return false;
    }
    *out = item->valuestring;
    return true;
}

bool parse_hex_digest(const char* hex, uint8_t out[32]) {
    if (hex == nullptr || strlen(hex) != 64) {
        return false;
    }
    for (int i = 0; i < 32; ++i) {
        unsigned v = 0;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !isxdigit(static_cast<unsigned char>(hex[2 * i])) ||
            !isxdigit(static_cast<unsigned char>(hex[2 * i + 1]))) {
            return false;
        }
        out[i] = static_cast<uint8_t>(v);
    }
    return true;
}

}  // namespace

bool parse_broker_url(const std::string& url, std::string* host, int* port, std::string* error) {
    const std::string scheme = "mqtts://";
    if (url.compare(0, scheme.size(), scheme) != 0) {
        *error = "broker URL " + url + " is not mqtts:// (the broker accepts devices over TLS only)";
        return false;
    }
    std::string rest = url.substr(scheme.size());
    const size_t slash = rest.find('/');
    if (slash != std::string::npos) {
        rest = rest.substr(0, slash);
    }
    std::string port_text;
    if (!rest.empty() && rest[0] == '[') {
        const size_t close = rest.find(']');
        if (close == std::string::npos) {
            *error = "broker URL " + url + ": unterminated IPv6 address";
            return false;
        }
        *host = rest.substr(1, close - 1);
        if (close + 1 < rest.size()) {
            if (rest[close + 1] != ':') {
                *error = "broker URL " + url + ": unexpected text after the address";
                return false;
            }
            port_text = rest.substr(close + 2);
        }
    } else {
        const size_t colon = rest.rfind(':');
        *host = rest.substr(0, colon);
        if (colon != std::string::npos) {
            port_text = rest.substr(colon + 1);
        }
    }
    *port = 8883;
    if (!port_text.empty()) {
        char* end = nullptr;
        const long p = strtol(port_text.c_str(), &end, 10);
        if (*end != '\0' || p < 1 || p > 65535) {
            *error = "broker URL " + url + ": invalid port";
            return false;
        }
        *port = static_cast<int>(p);
    }
    if (host->empty()) {
        *error = "broker URL " + url + ": no host";
        return false;
    }
    return true;
}

bool load_device_bundle(const std::string& dir, DeviceBundle* out, std::string* error, const std::string& own_key_file) {
    std::string text;
    const std::string json_path = dir + "/device.json";
    if (!read_text_file(json_path, &text, 64 * 1024)) {
        *error = "cannot read " + json_path;
        return false;
    }
    cJSON* root = cJSON_ParseWithLength(text.data(), text.size());
    DeviceBundle b;
    const bool ok = cJSON_IsObject(root) && json_string(root, "deviceId", &b.device_id) &&
                    json_string(root, "brokerUrl", &b.broker_url);
    json_string(root, "type", &b.type);
    bool digests_ok = true;
    const cJSON* digests = cJSON_GetObjectItemCaseSensitive(root, "imageKeyDigests");
    if (digests != nullptr) {
        const cJSON* d = nullptr;
        digests_ok = cJSON_IsArray(digests) && cJSON_GetArraySize(digests) <= 16;
        cJSON_ArrayForEach(d, digests) {
            std::array<uint8_t, 32> digest{};
            digests_ok = digests_ok && cJSON_IsString(d) && parse_hex_digest(d->valuestring, digest.data());
            b.image_key_digests.push_back(digest);
        }
    }
    cJSON_Delete(root);
    if (!digests_ok) {
        *error = json_path + ": imageKeyDigests must be a list of SHA-256 digests in hex";
        return false;
    }
    if (!ok) {
        *error = json_path + ": expected {\"deviceId\", \"type\", \"brokerUrl\"}";
        return false;
    }
    if (!is_valid_device_id(b.device_id.c_str())) {
        *error = json_path + ": invalid deviceId " + b.device_id;
        return false;
    }
    if (!parse_broker_url(b.broker_url, &b.broker_host, &b.broker_port, error)) {
        return false;
    }
    b.ca_file = dir + "/ca.crt";
    b.cert_file = dir + "/device.crt";
    b.key_file = dir + "/device.key";
    if (access(b.key_file.c_str(), R_OK) != 0 && !own_key_file.empty()) {
        b.key_file = own_key_file;  // a bundle from a CSR has no key: the device holds it
    }
    for (const std::string* f : {&b.ca_file, &b.cert_file, &b.key_file}) {
        if (access(f->c_str(), R_OK) != 0) {
            *error = "cannot read " + *f;
            return false;
        }
    }
    if (access((dir + "/command-key.pem").c_str(), F_OK) == 0) {
        b.command_key_file = dir + "/command-key.pem";
    }
    *out = std::move(b);
    return true;
}

}  // namespace mqota::linux_port
