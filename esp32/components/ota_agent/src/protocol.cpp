#include "ota_agent/protocol.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// ESP-IDF ships cJSON as the `json` component (include dir components/json/cJSON); the host build
// uses Debian's libcjson-dev (/usr/include/cjson). Both expose it as "cJSON.h".
#include "cJSON.h"

namespace mqota {
namespace {

bool is_id_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

// Copies a string field of at most max_len characters; false if missing, not a string, empty or
// too long. Nothing is truncated: a long value is invalid, not shortened into another value.
bool copy_string(const cJSON* object, const char* name, char* out, size_t max_len) {
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(object, name);
    if (!cJSON_IsString(item) || item->valuestring == nullptr) {
        return false;
    }
    const size_t len = strlen(item->valuestring);
    if (len == 0 || len > max_len) {
        return false;
    }
    memcpy(out, item->valuestring, len + 1);
    return true;
}

// Update ids are opaque to the device; accept printable ASCII so they can be logged and echoed.
bool valid_update_id(const char* id) {
    for (const char* p = id; *p != '\0'; ++p) {
        if (*p < 0x21 || *p > 0x7e) {
            return false;
        }
    }
    return true;
}

bool valid_type(const char* type) {
    for (const char* p = type; *p != '\0'; ++p) {
        if (!is_id_char(*p)) {
            return false;
        }
    }
    return true;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool parse_sha256(const char* hex, uint8_t out[kSha256Bytes]) {
    if (strlen(hex) != 2 * kSha256Bytes) {
        return false;
    }
    for (size_t i = 0; i < kSha256Bytes; ++i) {
        const int hi = hex_value(hex[2 * i]);
        const int lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return true;
}

bool parse_size(const cJSON* object, uint32_t* out) {
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(object, "size");
    if (!cJSON_IsNumber(item)) {
        return false;
    }
    const double v = item->valuedouble;
    if (!(v >= 1.0) || v > 4294967295.0 || floor(v) != v) {
        return false;
    }
    *out = static_cast<uint32_t>(v);
    return true;
}

DecodeResult bad_field(const char* field, bool has_update_id) {
    return DecodeResult{DecodeStatus::bad_field, field, has_update_id};
}

// RFC 4648 §4 base64 with padding; false on any other character or a result over cap.
bool base64_decode(const char* in, uint8_t* out, size_t cap, size_t* out_len) {
    const size_t len = strlen(in);
    if (len == 0 || len % 4 != 0) {
        return false;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t group = 0;
        int pad = 0;
        for (size_t j = 0; j < 4; ++j) {
            const char c = in[i + j];
            int v = -1;
            if (c >= 'A' && c <= 'Z') v = c - 'A';
            else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
            else if (c >= '0' && c <= '9') v = c - '0' + 52;
            else if (c == '+') v = 62;
            else if (c == '/') v = 63;
            else if (c == '=' && i + 4 == len && j >= 2) { v = 0; ++pad; }
            if (v < 0 || (pad > 0 && c != '=')) {
                return false;
            }
            group = (group << 6) | static_cast<uint32_t>(v);
        }
        const size_t bytes = 3 - static_cast<size_t>(pad);
        if (n + bytes > cap) {
            return false;
        }
        for (size_t k = 0; k < bytes; ++k) {
            out[n++] = static_cast<uint8_t>(group >> (16 - 8 * k));
        }
    }
    *out_len = n;
    return true;
}

DecodeResult decode_update(const cJSON* root, Command* out, bool has_id) {
    if (!has_id) {
        return bad_field("updateId", false);
    }
    UpdateTarget& t = out->target;
    if (!copy_string(root, "type", t.type, kTypeMax) || !valid_type(t.type)) {
        return bad_field("type", true);
    }
    if (!copy_string(root, "version", t.version, kVersionMax)) {
        return bad_field("version", true);
    }
    // Images are fetched over HTTPS only, verified with the mqota CA (docs/protocol.md).
    if (!copy_string(root, "url", t.url, kUrlMax) || strncmp(t.url, "https://", 8) != 0 ||
        t.url[8] == '\0') {
        return bad_field("url", true);
    }
    char sha_hex[2 * kSha256Bytes + 1];
    if (!copy_string(root, "sha256", sha_hex, 2 * kSha256Bytes) || !parse_sha256(sha_hex, t.sha256)) {
        return bad_field("sha256", true);
    }
    if (!parse_size(root, &t.size)) {
        return bad_field("size", true);
    }
    memcpy(t.sha256_hex, sha_hex, sizeof(t.sha256_hex));
    // Optional fields: present means valid, or the command is refused rather than half-read.
    if (cJSON_HasObjectItem(root, "imageVersion") && !copy_string(root, "imageVersion", t.image_version, kVersionMax)) {
        return bad_field("imageVersion", true);
    }
    CommandSignature& sig = out->signature;
    if (cJSON_HasObjectItem(root, "deviceId") && !copy_string(root, "deviceId", sig.device_id, kDeviceIdMax)) {
        return bad_field("deviceId", true);
    }
    const cJSON* expires = cJSON_GetObjectItemCaseSensitive(root, "expires");
    if (expires != nullptr) {
        // An integer a double holds exactly (JSON numbers are doubles in cJSON).
        if (!cJSON_IsNumber(expires) || expires->valuedouble < 0 || expires->valuedouble > 9007199254740991.0 ||
            floor(expires->valuedouble) != expires->valuedouble) {
            return bad_field("expires", true);
        }
        sig.has_expires = true;
        sig.expires = static_cast<uint64_t>(expires->valuedouble);
    }
    if (cJSON_HasObjectItem(root, "sig")) {
        char b64[4 * ((kCommandSignatureMax + 2) / 3) + 1];
        if (!copy_string(root, "sig", b64, sizeof(b64) - 1) ||
            !base64_decode(b64, sig.der, sizeof(sig.der), &sig.der_len)) {
            return bad_field("sig", true);
        }
        sig.present = true;
    }
    return DecodeResult{DecodeStatus::ok, nullptr, true};
}

// cJSON owns its tree; this keeps every early return from leaking it.
class JsonTree {
public:
    explicit JsonTree(cJSON* root) : root_(root) {}
    ~JsonTree() { cJSON_Delete(root_); }
    JsonTree(const JsonTree&) = delete;
    JsonTree& operator=(const JsonTree&) = delete;
    cJSON* get() const { return root_; }

private:
    cJSON* root_;
};

size_t print_into(cJSON* root, char* out, size_t cap) {
    if (root == nullptr || cap == 0 || cap > 0x7fffffff) {
        return 0;
    }
    // cJSON_PrintPreallocated never writes past `cap` and fails instead of truncating.
    if (!cJSON_PrintPreallocated(root, out, static_cast<int>(cap), false)) {
        out[0] = '\0';
        return 0;
    }
    return strlen(out);
}

bool add_string(cJSON* object, const char* name, const char* value) {
    return cJSON_AddStringToObject(object, name, value) != nullptr;
}

}  // namespace

bool is_valid_device_id(const char* id) {
    if (id == nullptr || id[0] == '\0' || id[0] == '.') {
        return false;
    }
    size_t len = 0;
    for (const char* p = id; *p != '\0'; ++p, ++len) {
        if (!is_id_char(*p) || len >= kDeviceIdMax) {
            return false;
        }
    }
    return true;
}

bool Topics::init(const char* device_id) {
    if (!is_valid_device_id(device_id)) {
        return false;
    }
    snprintf(command_, sizeof(command_), "devices/%s/command", device_id);
    snprintf(announce_, sizeof(announce_), "devices/%s/announce", device_id);
    snprintf(status_, sizeof(status_), "devices/%s/status", device_id);
    snprintf(presence_, sizeof(presence_), "devices/%s/presence", device_id);
    return true;
}

DecodeResult decode_command(const char* payload, size_t len, Command* out) {
    memset(out, 0, sizeof(*out));
    if (len > kMaxPayloadBytes) {
        return DecodeResult{DecodeStatus::too_large, nullptr, false};
    }
    JsonTree tree(cJSON_ParseWithLength(payload, len));
    const cJSON* root = tree.get();
    if (root == nullptr) {
        return DecodeResult{DecodeStatus::not_json, nullptr, false};
    }
    if (!cJSON_IsObject(root)) {
        return DecodeResult{DecodeStatus::not_object, nullptr, false};
    }
    const bool has_id = copy_string(root, "updateId", out->update_id, kUpdateIdMax) &&
                        valid_update_id(out->update_id);
    if (!has_id) {
        out->update_id[0] = '\0';
    }
    const cJSON* action = cJSON_GetObjectItemCaseSensitive(root, "action");
    if (!cJSON_IsString(action) || action->valuestring == nullptr) {
        return DecodeResult{DecodeStatus::bad_action, "action", has_id};
    }
    if (strcmp(action->valuestring, "update") == 0) {
        out->action = CommandAction::update;
        return decode_update(root, out, has_id);
    }
    if (strcmp(action->valuestring, "cancel") == 0) {
        out->action = CommandAction::cancel;
        return has_id ? DecodeResult{DecodeStatus::ok, nullptr, true} : bad_field("updateId", false);
    }
    if (strcmp(action->valuestring, "none") == 0) {
        out->action = CommandAction::none;
        const cJSON* reason = cJSON_GetObjectItemCaseSensitive(root, "reason");
        if (cJSON_IsString(reason) && reason->valuestring != nullptr) {
            snprintf(out->reason, sizeof(out->reason), "%s", reason->valuestring);
        }
        const cJSON* error = cJSON_GetObjectItemCaseSensitive(root, "error");
        if (cJSON_IsString(error) && error->valuestring != nullptr) {
            snprintf(out->error, sizeof(out->error), "%s", error->valuestring);
        }
        return DecodeResult{DecodeStatus::ok, nullptr, has_id};
    }
    return DecodeResult{DecodeStatus::bad_action, "action", has_id};
}

const char* to_string(DecodeStatus status) {
    switch (status) {
        case DecodeStatus::ok: return "ok";
        case DecodeStatus::too_large: return "payload larger than 4 KiB";
        case DecodeStatus::not_json: return "not JSON";
        case DecodeStatus::not_object: return "not a JSON object";
        case DecodeStatus::bad_action: return "missing or unknown action";
        case DecodeStatus::bad_field: return "missing or invalid field";
    }
    return "?";
}

const char* to_string(UpdateState state) {
    switch (state) {
        case UpdateState::deferred: return "deferred";
        case UpdateState::accepted: return "accepted";
        case UpdateState::downloading: return "downloading";
        case UpdateState::downloaded: return "downloaded";
        case UpdateState::rebooting: return "rebooting";
        case UpdateState::succeeded: return "succeeded";
        case UpdateState::failed: return "failed";
        case UpdateState::rolled_back: return "rolled_back";
        case UpdateState::rejected: return "rejected";
    }
    return "?";
}

bool is_final(UpdateState state) {
    return state == UpdateState::succeeded || state == UpdateState::failed ||
           state == UpdateState::rolled_back || state == UpdateState::rejected;
}

size_t encode_status(const StatusReport& report, char* out, size_t cap) {
    JsonTree tree(cJSON_CreateObject());
    cJSON* root = tree.get();
    if (root == nullptr || report.update_id == nullptr) {
        return 0;
    }
    bool ok = add_string(root, "updateId", report.update_id) &&
              add_string(root, "state", to_string(report.state));
    if (ok && report.progress >= 0) {
        const int progress = report.progress > 100 ? 100 : report.progress;
        ok = cJSON_AddNumberToObject(root, "progress", progress) != nullptr;
    }
    if (ok && report.version != nullptr) {
        ok = add_string(root, "version", report.version);
    }
    if (ok && report.error != nullptr && report.error[0] != '\0') {
        ok = add_string(root, "error", report.error);
    }
    if (ok && report.reason != nullptr && report.reason[0] != '\0') {
        ok = add_string(root, "reason", report.reason);
    }
    if (ok && report.retry_after_s > 0) {
        ok = cJSON_AddNumberToObject(root, "retryAfter", report.retry_after_s) != nullptr;
    }
    return ok ? print_into(root, out, cap) : 0;
}

// docs/protocol.md#health: only what the port filled in.
static bool add_health(cJSON* root, const DeviceHealth& h) {
    cJSON* health = cJSON_AddObjectToObject(root, "health");
    if (health == nullptr) {
        return false;
    }
    bool ok = true;
    if (h.has_rssi) {
        ok = ok && cJSON_AddNumberToObject(health, "rssi", h.rssi) != nullptr;
    }
    if (h.has_heap) {
        ok = ok && cJSON_AddNumberToObject(health, "freeHeap", h.free_heap) != nullptr &&
             cJSON_AddNumberToObject(health, "minFreeHeap", h.min_free_heap) != nullptr;
    }
    if (h.has_uptime) {
        ok = ok && cJSON_AddNumberToObject(health, "uptimeS", h.uptime_s) != nullptr;
    }
    if (h.reset_reason != nullptr) {
        ok = ok && add_string(health, "resetReason", h.reset_reason);
    }
    if (h.has_partition_size) {
        ok = ok && cJSON_AddNumberToObject(health, "partitionSize", h.partition_size) != nullptr;
    }
    if (h.has_elf_sha256) {
        char hex[2 * kSha256Bytes + 1];
        sha256_to_hex(h.elf_sha256, hex);
        ok = ok && add_string(health, "elfSha256", hex);
    }
    return ok;
}

size_t encode_announce(const Announce& announce, char* out, size_t cap) {
    JsonTree tree(cJSON_CreateObject());
    cJSON* root = tree.get();
    if (root == nullptr || announce.type == nullptr || announce.version == nullptr) {
        return 0;
    }
    bool ok = add_string(root, "type", announce.type) && add_string(root, "version", announce.version);
    if (ok && announce.chip != nullptr) {
        ok = add_string(root, "chip", announce.chip);
    }
    if (ok && announce.idf != nullptr) {
        ok = add_string(root, "idf", announce.idf);
    }
    if (ok) {
        ok = cJSON_AddNumberToObject(root, "secureVersion", announce.secure_version) != nullptr;
    }
    if (ok && announce.slot != nullptr) {
        ok = add_string(root, "slot", announce.slot);
    }
    if (ok && announce.health != nullptr) {
        ok = add_health(root, *announce.health);
    }
    return ok ? print_into(root, out, cap) : 0;
}

size_t command_signing_text(const char* device_id, const Command& c, char* out, size_t cap) {
    const UpdateTarget& t = c.target;
    const int n = snprintf(out, cap, "mqota-command-v1\n%s\n%s\n%s\n%s\n%s\n%s\n%u\n%llu", device_id, c.update_id, t.type,
                           t.version, t.image_version, t.sha256_hex, static_cast<unsigned>(t.size),
                           static_cast<unsigned long long>(c.signature.expires));
    return n > 0 && static_cast<size_t>(n) < cap ? static_cast<size_t>(n) : 0;
}

void sha256_to_hex(const uint8_t digest[kSha256Bytes], char out[2 * kSha256Bytes + 1]) {
    static const char kHex[] = "0123456789abcdef";
    for (size_t i = 0; i < kSha256Bytes; ++i) {
        out[2 * i] = kHex[digest[i] >> 4];
        out[2 * i + 1] = kHex[digest[i] & 0x0f];
    }
    out[2 * kSha256Bytes] = '\0';
}

}  // namespace mqota
