// Builds ESP-IDF application images for tests, byte for byte in the layout of esp_app_format.h
// and esp_app_desc.h: esp_image_header_t, one segment header, esp_app_desc_t, then payload.
#pragma once

#include <stdint.h>

#include <array>
#include <string>
#include <vector>

namespace mqota::test {

struct TestImageSpec {
    std::string project = "thermostat";
    std::string version = "1.0.0";
    uint16_t chip_id = 0x0000;  // ESP_CHIP_ID_ESP32
    uint32_t secure_version = 0;
    std::string idf_version = "v5.5.5";
    size_t size = 8192;         // total image bytes
    std::string marker;         // written into the payload if not empty
    uint32_t seed = 1;          // payload pattern
};

std::vector<uint8_t> make_test_image(const TestImageSpec& spec);

std::array<uint8_t, 32> sha256_of(const std::vector<uint8_t>& data);
std::string sha256_hex(const std::vector<uint8_t>& data);

}  // namespace mqota::test
