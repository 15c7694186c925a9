#include "support/test_image.h"

#include <openssl/sha.h>
#include <string.h>

#include <stdexcept>

namespace mqota::test {
namespace {

void put_le16(std::vector<uint8_t>& v, size_t at, uint16_t x) {
    v[at] = static_cast<uint8_t>(x);
    v[at + 1] = static_cast<uint8_t>(x >> 8);
}

void put_le32(std::vector<uint8_t>& v, size_t at, uint32_t x) {
    for (int i = 0; i < 4; ++i) v[at + i] = static_cast<uint8_t>(x >> (8 * i));
}

void put_text(std::vector<uint8_t>& v, size_t at, size_t field, const std::string& s) {
    memcpy(v.data() + at, s.data(), s.size() < field ? s.size() : field);
}

}  // namespace

std::vector<uint8_t> make_test_image(const TestImageSpec& spec) {
    constexpr size_t kPrefix = 24 + 8 + 256;
    if (spec.size < kPrefix + spec.marker.size()) {
        throw std::invalid_argument("test image too small");
    }
    std::vector<uint8_t> img(spec.size, 0);
    // esp_image_header_t
    img[0] = 0xE9;                       // magic
    img[1] = 1;                          // segment_count
    img[2] = 2;                          // spi_mode DIO
    img[3] = 0x20;                       // spi_speed 40 MHz, spi_size 4 MB
    put_le32(img, 4, 0x40080000);        // entry_addr
    img[8] = 0xEE;                       // wp_pin disabled
    put_le16(img, 12, spec.chip_id);     // chip_id
    img[14] = 0;                         // min_chip_rev
    put_le16(img, 15, 0);                // min_chip_rev_full
    put_le16(img, 17, 0xFFFF);           // max_chip_rev_full
    img[23] = 1;                         // hash_appended
    // esp_image_segment_header_t
    put_le32(img, 24, 0x3F400020);
    put_le32(img, 28, static_cast<uint32_t>(spec.size - 32));
    // esp_app_desc_t at 32
    put_le32(img, 32, 0xABCD5432);
    put_le32(img, 36, spec.secure_version);
    put_text(img, 32 + 16, 32, spec.version);
    put_text(img, 32 + 48, 32, spec.project);
    put_text(img, 32 + 80, 16, "12:00:00");
    put_text(img, 32 + 96, 16, "Jan  1 2025");
    put_text(img, 32 + 112, 32, spec.idf_version);
    // Payload: a pattern that differs per seed, so two images never share their bytes.
    uint32_t x = spec.seed * 2654435761u + 1;
    for (size_t i = kPrefix; i < img.size(); ++i) {
        x = x * 1103515245u + 12345u;
        img[i] = static_cast<uint8_t>(x >> 16);
    }
    if (!spec.marker.empty()) {
        memcpy(img.data() + kPrefix + 64, spec.marker.data(), spec.marker.size());
    }
    return img;
}

std::array<uint8_t, 32> sha256_of(const std::vector<uint8_t>& data) {
    std::array<uint8_t, 32> d{};
    SHA256(data.data(), data.size(), d.data());
    return d;
}

std::string sha256_hex(const std::vector<uint8_t>& data) {
    static const char kHex[] = "0123456789abcdef";
    const auto d = sha256_of(data);
    std::string s;
    for (const uint8_t b : d) {
        s += kHex[b >> 4];
        s += kHex[b & 15];
    }
    return s;
}

}  // namespace mqota::test
