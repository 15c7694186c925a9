// The device side of docs/protocol.md: topic names, the command decoder and the announce and
// status encoders. This is the only place that knows the topic scheme and the JSON field names.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ota_agent/limits.h"
#include "ota_agent/platform.h"

namespace mqota {

// docs/protocol.md "Connection": 1-64 characters from [A-Za-z0-9_.-], not starting with '.'.
bool is_valid_device_id(const char* id);

// devices/{id}/command, devices/{id}/announce, devices/{id}/status, devices/{id}/presence.
class Topics {
public:
    bool init(const char* device_id);  // false for an invalid device id
    const char* command() const { return command_; }
    const char* announce() const { return announce_; }
    const char* status() const { return status_; }
    // Retained kPresenceOnline after every connect, kPresenceOffline as the last will: how a
    // server behind an external broker knows who is connected (docs/protocol.md "Presence").
    const char* presence() const { return presence_; }

private:
    char command_[kTopicMax + 1] = {};
    char announce_[kTopicMax + 1] = {};
    char status_[kTopicMax + 1] = {};
    char presence_[kTopicMax + 1] = {};
};

constexpr const char* kPresenceOnline = "{\"online\":true}";
constexpr const char* kPresenceOffline = "{\"online\":false}";

enum class CommandAction : uint8_t { update, none, cancel };

// The image an update command points at.
struct UpdateTarget {
    char type[kTypeMax + 1];
    char version[kVersionMax + 1];        // the catalog version (semver)
    // The image's own version (esp_app_desc_t::version) when the server says it differs from
    // `version` ("" when not sent): what the downloaded image is checked against.
    char image_version[kVersionMax + 1];
    char url[kUrlMax + 1];
    uint8_t sha256[kSha256Bytes];
    char sha256_hex[2 * kSha256Bytes + 1];  // as sent: part of the signed text
    uint32_t size;
};

// docs/protocol.md "Signed commands": what the server adds to an update command it signs.
struct CommandSignature {
    bool present;                         // `sig` was sent
    char device_id[kDeviceIdMax + 1];     // `deviceId`, "" if absent
    bool has_expires;
    uint64_t expires;                     // Unix seconds
    uint8_t der[kCommandSignatureMax];    // ECDSA P-256 signature, DER
    size_t der_len;
};

struct Command {
    CommandAction action;
    char update_id[kUpdateIdMax + 1];  // update and cancel
    UpdateTarget target;               // update
    CommandSignature signature;        // update
    char reason[64];                   // none; truncated, for the log only
    char error[96];                    // none (e.g. why an announce was invalid); log only
};

enum class DecodeStatus : uint8_t {
    ok,
    too_large,       // more than kMaxPayloadBytes
    not_json,
    not_object,
    bad_action,      // missing, not a string, or unknown
    bad_field,       // a required field is missing or invalid; see DecodeResult::field
};

struct DecodeResult {
    DecodeStatus status;
    const char* field;   // static name of the offending field for bad_field, else nullptr
    // True when update_id holds a valid id even though decoding failed, so the device can
    // answer the command with a `rejected` status instead of only logging it.
    bool has_update_id;
};

// Decodes a command payload (not NUL-terminated). Unknown fields are ignored.
DecodeResult decode_command(const char* payload, size_t len, Command* out);

const char* to_string(DecodeStatus status);

// Status report states, docs/protocol.md "status".
enum class UpdateState : uint8_t {
    accepted,
    downloading,
    downloaded,
    rebooting,
    succeeded,
    failed,
    rolled_back,
    rejected,
    // The application asked for the offer again after retry_after_s ("Deferral"). Last, so the
    // values stored in update records keep their meaning.
    deferred,
};

const char* to_string(UpdateState state);
bool is_final(UpdateState state);

struct StatusReport {
    const char* update_id;
    UpdateState state;
    int progress;          // 0-100, or -1 to omit
    const char* version;   // nullptr to omit; required with `succeeded`
    const char* error;     // nullptr or "" to omit; machine-readable cause
    const char* reason;    // nullptr or "" to omit; human-readable text
    uint32_t retry_after_s = 0;  // with `deferred`: seconds before the server offers again; 0 to omit
};

struct Announce {
    const char* type;
    const char* version;
    const char* chip;      // nullptr to omit
    const char* idf;       // nullptr to omit
    uint32_t secure_version;
    const char* slot;      // nullptr to omit
    const DeviceHealth* health = nullptr;  // nullptr to omit
};

// Encoders write compact JSON and a terminating NUL into out[0..cap) and return the JSON length,
// or 0 when it does not fit.
size_t encode_status(const StatusReport& report, char* out, size_t cap);
size_t encode_announce(const Announce& announce, char* out, size_t cap);

// The text the server signs for an update command (src/protocol/command-signature.ts): context,
// device id, updateId, type, version, imageVersion, sha256, size and expires, one a line. Returns
// its length, 0 if it does not fit in cap.
size_t command_signing_text(const char* device_id, const Command& command, char* out, size_t cap);

// Lowercase hex of a SHA-256 digest into out[65].
void sha256_to_hex(const uint8_t digest[kSha256Bytes], char out[2 * kSha256Bytes + 1]);

}  // namespace mqota
