// What the device remembers about its current or last update across reboots and power loss:
// the updateId, where the download stands (URL, ETag, offset) and how it ended. It is stored as
// one value in the platform key-value store (NVS on the chip), so each save replaces the whole
// record at once and a half-written record is never read back (it fails the CRC).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ota_agent/limits.h"
#include "ota_agent/protocol.h"

namespace mqota {

constexpr const char* kUpdateRecordKey = "update";  // NVS keys are at most 15 characters

enum class RecordPhase : uint8_t {
    none = 0,         // nothing remembered
    downloading = 1,  // accepted; the passive slot may hold `offset` bytes of the image
    flashed = 2,      // image verified, boot slot switched to target_slot, reboot pending
    finished = 3,     // final_state is the outcome; re-reported for duplicate commands
};

struct UpdateRecord {
    RecordPhase phase;
    UpdateState final_state;  // phase == finished
    bool final_reported;      // the final status reached the broker (PUBACK)
    uint8_t attempts;         // failed download attempts so far
    uint32_t size;
    uint32_t offset;          // bytes of the image known to be in the passive slot
    uint8_t sha256[kSha256Bytes];
    char update_id[kUpdateIdMax + 1];
    char target_version[kVersionMax + 1];
    char target_slot[kSlotLabelMax + 1];
    char url[kUrlMax + 1];
    char etag[kEtagMax + 1];  // strong ETag of the response the offset belongs to; "" if none
    char error[kErrorCodeMax + 1];
    char reason[kReasonMax + 1];
};

// Size of an encoded record with every string at its limit: magic and format (4), four u8
// fields (4), size and offset (8), sha256, seven length-prefixed strings, CRC-32 (4).
constexpr size_t kUpdateRecordMaxBytes = 4 + 4 + 8 + kSha256Bytes + 7 +
                                         (kUpdateIdMax + kVersionMax + kSlotLabelMax + kUrlMax +
                                          kEtagMax + kErrorCodeMax + kReasonMax) + 4;

// Little-endian, versioned, CRC-32 protected. Returns the encoded length, 0 if cap is too small.
size_t encode_update_record(const UpdateRecord& record, uint8_t* out, size_t cap);
// False for anything that is not a complete record of a known format version.
bool decode_update_record(const uint8_t* data, size_t len, UpdateRecord* out);

// CRC-32 (IEEE 802.3, as zlib) of data, continuing from crc (0 to start).
uint32_t crc32_ieee(uint32_t crc, const uint8_t* data, size_t len);

}  // namespace mqota
