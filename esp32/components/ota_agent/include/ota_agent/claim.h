// Provisioning by claim, device side (docs/provisioning.md): a device that has no certificate of
// its own but its batch's claim certificate makes a key, connects as `{claimId}:{deviceId}` with a
// clean session, subscribes to its response topic, sends `{"csr": "<PEM>"}` on the request topic
// and reads the answer. This is the only place that spells those topics and fields on the device.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ota_agent/limits.h"

namespace mqota {

// Claim ids follow the device id rule (they are a certificate CN and a topic level).
constexpr size_t kClaimIdMax = kDeviceIdMax;
// "{claimId}:{deviceId}"
constexpr size_t kClaimClientIdMax = kClaimIdMax + 1 + kDeviceIdMax;
// "provision/" + claim + "/response/" + device
constexpr size_t kClaimTopicMax = 10 + kClaimIdMax + 10 + kDeviceIdMax;
// A PEM certificate from the server (ECDSA P-256: ~700 bytes; RSA-4096 devices: ~2 KiB).
constexpr size_t kCertificatePemMax = 3000;

class ClaimTopics {
public:
    // False if either id is not a valid device id.
    bool init(const char* claim_id, const char* device_id);
    const char* client_id() const { return client_id_; }
    const char* request() const { return request_; }
    const char* response() const { return response_; }

private:
    char client_id_[kClaimClientIdMax + 1] = {};
    char request_[kClaimTopicMax + 1] = {};
    char response_[kClaimTopicMax + 1] = {};
};

// {"csr":"<PEM>"}; 0 if it does not fit in cap (including the NUL).
size_t encode_claim_request(const char* csr_pem, char* out, size_t cap);

enum class ClaimStatus : uint8_t {
    issued,   // cert_pem holds the device certificate: store it with the key, reconnect as the device
    pending,  // an operator must approve; the answer comes later (or ask again)
    refused,  // error/reason say why; ask again only after a back-off
    invalid,  // not an answer for this device (bad JSON, another device id, no certificate)
};

const char* to_string(ClaimStatus status);

struct ClaimAnswer {
    ClaimStatus status;
    char error[kErrorCodeMax + 1];  // refused: claim-expired, claim-exhausted, device-id-taken, ...
    char reason[kReasonMax + 1];    // refused: for the log; cut to fit
};

// Decodes an answer for `device_id`. On `issued` the certificate PEM is copied into cert_pem
// (NUL-terminated); an answer whose certificate does not fit is `invalid`.
ClaimAnswer decode_claim_answer(const char* payload, size_t len, const char* device_id, char* cert_pem, size_t cert_cap);

}  // namespace mqota
