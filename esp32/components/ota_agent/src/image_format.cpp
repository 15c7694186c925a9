#include "ota_agent/image_format.h"

#include <string.h>

namespace mqota {
namespace {

uint32_t read_le32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
           static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

template <size_t N>
void copy_field(char (&out)[N], const uint8_t* field) {
    // The image field is N-1 bytes and NUL-padded, but a value that fills it has no NUL.
    memcpy(out, field, N - 1);
    out[N - 1] = '\0';
}

}  // namespace

ImageCheck parse_image_prefix(const uint8_t* data, size_t len, ImageDescription* out) {
    if (data == nullptr || len < kImagePrefixBytes) {
        return ImageCheck::too_short;
    }
    if (data[0] != kImageMagic) {
        return ImageCheck::bad_image_magic;
    }
    if (read_le32(data + kAppDescOffset) != kAppDescMagic) {
        return ImageCheck::bad_app_desc_magic;
    }
    ImageDescription d{};
    d.chip_id = static_cast<uint16_t>(data[kChipIdOffset] | data[kChipIdOffset + 1] << 8);
    d.app.secure_version = read_le32(data + kSecureVersionOffset);
    copy_field(d.app.version, data + kVersionOffset);
    copy_field(d.app.project_name, data + kProjectNameOffset);
    copy_field(d.app.time, data + kTimeOffset);
    copy_field(d.app.date, data + kDateOffset);
    copy_field(d.app.idf_ver, data + kIdfVersionOffset);
    *out = d;
    return ImageCheck::ok;
}

const char* to_string(ImageCheck check) {
    switch (check) {
        case ImageCheck::ok: return "ok";
        case ImageCheck::too_short: return "shorter than an image header and app description";
        case ImageCheck::bad_image_magic: return "not an ESP-IDF image (magic is not 0xE9)";
        case ImageCheck::bad_app_desc_magic: return "no esp_app_desc_t (magic is not 0xABCD5432)";
    }
    return "?";
}

const char* chip_name(uint16_t chip_id) {
    // esp_chip_id_t values from esp_app_format.h.
    switch (chip_id) {
        case 0x0000: return "esp32";
        case 0x0002: return "esp32s2";
        case 0x0005: return "esp32c3";
        case 0x0009: return "esp32s3";
        case 0x000C: return "esp32c2";
        case 0x000D: return "esp32c6";
        case 0x0010: return "esp32h2";
        case 0x0012: return "esp32p4";
        case 0x0014: return "esp32c61";
        case 0x0017: return "esp32c5";
        default: return nullptr;
    }
}

}  // namespace mqota
