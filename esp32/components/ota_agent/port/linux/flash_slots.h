// The flash of a simulated device in a state directory:
//   ota_0.bin, ota_1.bin   the two app slots (ESP-IDF partitions ota_0/ota_1), at most slot_size
//   otadata                the otadata partition (0x2000 bytes, see otadata.h)
// Each otadata update replaces the file atomically (write, fsync, rename), as the chip replaces
// one otadata sector. Image validity is judged on the header (esp_image_header_t magic and
// esp_app_desc_t magic); the agent checks the full image with the server's sha256.
#pragma once

#include <stdint.h>

#include <string>

#include "ota_agent/image_format.h"
#include "ota_agent/limits.h"
#include "ota_agent/platform.h"
#include "otadata.h"

namespace mqota::linux_port {

class FlashSlots {
public:
    FlashSlots(std::string state_dir, uint32_t slot_size);

    // `idf.py flash`: writes the image to ota_0 and erases otadata (ota_data_initial.bin),
    // so the next boot runs ota_0.
    bool install(const std::string& image_path, std::string* error);

    // Runs the bootloader over the files: returns the booted slot or -1. Persists otadata.
    int boot(std::string* error);
    int running_slot() const { return running_; }
    int passive_slot() const { return running_ < 0 ? 0 : 1 - running_; }
    static const char* label(int slot) { return slot == 0 ? "ota_0" : "ota_1"; }
    uint32_t slot_size() const { return slot_size_; }

    bool describe(int slot, ImageDescription* out) const;
    SlotState state(int slot) const;
    int last_invalid_slot() const { return otadata_.last_invalid_slot(); }
    bool slot_contains(int slot, const char* marker) const;

    uint64_t passive_bytes() const;  // current length of the passive slot file
    // Writing the passive slot. begin_write() discards everything from `offset` on.
    bool begin_write(uint32_t offset, std::string* error);
    bool write(const uint8_t* data, size_t len, std::string* error);
    void end_write();
    bool sha256(uint32_t length, uint8_t digest[kSha256Bytes]) const;
    // len bytes at offset of the passive slot; false if the slot is shorter.
    bool read(uint32_t offset, void* buf, size_t len) const;

    // esp_ota_set_boot_partition(passive), esp_ota_mark_app_valid_cancel_rollback(),
    // esp_ota_mark_app_invalid_rollback().
    bool set_boot_passive(std::string* error);
    bool mark_running_valid();
    bool mark_running_invalid();

private:
    std::string slot_path(int slot) const;
    bool image_valid(int slot) const;
    bool save_otadata(std::string* error);
    void load_otadata();

    std::string dir_;
    uint32_t slot_size_;
    OtaData otadata_;
    int running_ = -1;
    int write_fd_ = -1;
    uint32_t write_pos_ = 0;
};

}  // namespace mqota::linux_port
