// Sizes of every bounded buffer in the agent. The core allocates nothing: each string it keeps
// lives in a fixed array sized here, and input longer than these limits is rejected, not cut.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace mqota {

// docs/protocol.md "Limits": payloads are JSON objects of at most 4 KiB.
constexpr size_t kMaxPayloadBytes = 4096;

// docs/protocol.md "Connection": device ids are 1-64 characters from [A-Za-z0-9_.-].
constexpr size_t kDeviceIdMax = 64;

// "devices/" + id + "/announce" is the longest topic the agent builds.
constexpr size_t kTopicMax = 8 + kDeviceIdMax + 9;

constexpr size_t kUpdateIdMax = 64;

// Firmware type: [A-Za-z0-9_.-]{1,64} on the wire; the device's own type is the ESP-IDF
// project name, a char[32] in esp_app_desc_t, so it never exceeds 31 characters.
constexpr size_t kTypeMax = 64;

// esp_app_desc_t::version is char[32]. A command naming a longer version cannot describe an
// ESP-IDF image, so it is rejected as invalid.
constexpr size_t kVersionMax = 32;

constexpr size_t kUrlMax = 255;

// A strong ETag; the mqota server sends "\"<64 hex>\"" (66 characters).
constexpr size_t kEtagMax = 95;

constexpr size_t kSlotLabelMax = 16;      // esp_partition_t::label is char[17]
constexpr size_t kChipNameMax = 15;
constexpr size_t kErrorCodeMax = 31;      // "sha256-mismatch", "self-test-failed", ...
constexpr size_t kReasonMax = 127;        // human-readable text in status reports
constexpr uint32_t kRetryAfterMaxS = 86400;  // longest deferral the server honours (docs/protocol.md "Deferral")
constexpr size_t kSha256Bytes = 32;
constexpr size_t kCommandSignatureMax = 72;  // DER ECDSA P-256: SEQUENCE of two INTEGERs <= 33 bytes

}  // namespace mqota
