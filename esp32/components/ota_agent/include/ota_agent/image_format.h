// The start of an ESP-IDF application image, read the way the chip reads it. Offsets follow
// esp_app_format.h (esp_image_header_t, 24 bytes, packed; esp_image_segment_header_t, 8 bytes) and
// esp_app_desc.h (esp_app_desc_t, 256 bytes, right after the first segment header).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ota_agent/limits.h"

namespace mqota {

constexpr uint8_t kImageMagic = 0xE9;              // ESP_IMAGE_HEADER_MAGIC
constexpr uint32_t kAppDescMagic = 0xABCD5432;     // ESP_APP_DESC_MAGIC_WORD
constexpr size_t kImageHeaderBytes = 24;           // sizeof(esp_image_header_t)
constexpr size_t kSegmentHeaderBytes = 8;          // sizeof(esp_image_segment_header_t)
constexpr size_t kAppDescOffset = kImageHeaderBytes + kSegmentHeaderBytes;
constexpr size_t kAppDescBytes = 256;              // sizeof(esp_app_desc_t)
constexpr size_t kImagePrefixBytes = kAppDescOffset + kAppDescBytes;

// Field offsets inside the image.
constexpr size_t kChipIdOffset = 12;                       // esp_image_header_t::chip_id (uint16 LE)
constexpr size_t kSecureVersionOffset = kAppDescOffset + 4;
constexpr size_t kVersionOffset = kAppDescOffset + 16;     // char version[32]
constexpr size_t kProjectNameOffset = kAppDescOffset + 48; // char project_name[32]
constexpr size_t kTimeOffset = kAppDescOffset + 80;        // char time[16]
constexpr size_t kDateOffset = kAppDescOffset + 96;        // char date[16]
constexpr size_t kIdfVersionOffset = kAppDescOffset + 112; // char idf_ver[32]

// esp_app_desc_t fields the agent uses, NUL-terminated (the image fields need not be).
struct AppDescription {
    uint32_t secure_version;
    char version[32 + 1];
    char project_name[32 + 1];
    char time[16 + 1];
    char date[16 + 1];
    char idf_ver[32 + 1];
};

struct ImageDescription {
    uint16_t chip_id;  // esp_chip_id_t
    AppDescription app;
};

enum class ImageCheck : uint8_t { ok, too_short, bad_image_magic, bad_app_desc_magic };

// Reads the first kImagePrefixBytes of an image.
ImageCheck parse_image_prefix(const uint8_t* data, size_t len, ImageDescription* out);

const char* to_string(ImageCheck check);

// esp_chip_id_t to the chip names of docs/protocol.md ("esp32", "esp32s3", ...); nullptr if unknown.
const char* chip_name(uint16_t chip_id);

}  // namespace mqota
