// The otadata partition of an ESP-IDF device with two OTA slots and no factory app, in memory,
// with the rules of the second-stage bootloader (bootloader_support/src/bootloader_utility.c,
// CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y) and of app_update/esp_ota_ops.c (ESP-IDF v5.5).
//
// Layout as on flash: two sectors of 0x1000 bytes, each starting with an esp_ota_select_entry_t
// {uint32 ota_seq; uint8 seq_label[20]; uint32 ota_state; uint32 crc}, crc = esp_rom_crc32_le(
// UINT32_MAX, &ota_seq, 4). The active entry is the valid one with the highest ota_seq; it boots
// slot (ota_seq - 1) % 2.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <functional>

namespace mqota::linux_port {

// esp_ota_img_states_t
enum class OtaImgState : uint32_t {
    new_image = 0x0,
    pending_verify = 0x1,
    valid = 0x2,
    invalid = 0x3,
    aborted = 0x4,
    undefined = 0xFFFFFFFF,
};

struct OtaSelectEntry {
    uint32_t ota_seq = 0xFFFFFFFF;
    uint8_t seq_label[20] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                             0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    uint32_t ota_state = 0xFFFFFFFF;
    uint32_t crc = 0xFFFFFFFF;
};

class OtaData {
public:
    static constexpr size_t kSectorBytes = 0x1000;
    static constexpr size_t kPartitionBytes = 2 * kSectorBytes;
    static constexpr int kSlotCount = 2;

    // Erased flash (all 0xFF), what `idf.py flash` writes as ota_data_initial.bin.
    OtaData() = default;

    static uint32_t entry_crc(const OtaSelectEntry& e);  // bootloader_common_ota_select_crc

    // Partition image of kPartitionBytes; load() of anything else gives an erased otadata.
    void load(const uint8_t* data, size_t len);
    void store(uint8_t* out) const;  // kPartitionBytes

    // Second-stage bootloader: marks PENDING_VERIFY entries ABORTED (the image had its one boot
    // and did not confirm), selects the slot, turns a NEW active entry into PENDING_VERIFY,
    // then loads the first slot with a valid image (selected, then the others), writing
    // ota_seq for it if otadata was blank. Returns the booted slot, or -1 if none is bootable.
    int boot(const std::function<bool(int slot)>& image_valid);

    // esp_ota_set_boot_partition(): new entry with the next sequence number for `slot`, state
    // NEW (rollback enabled), in the sector after the active one.
    void set_boot(int slot);
    // esp_ota_mark_app_valid_cancel_rollback() for the running slot.
    bool mark_valid(int running_slot);
    // esp_ota_mark_app_invalid_rollback(): false (nothing changed) when no other slot holds a
    // valid entry with a valid image (ESP_ERR_OTA_ROLLBACK_FAILED).
    bool mark_invalid(int running_slot, const std::function<bool(int slot)>& image_valid);
    // esp_ota_get_state_partition(); false when no entry with a valid CRC names the slot.
    bool state_of(int slot, OtaImgState* state) const;
    // esp_ota_get_last_invalid_partition(): the slot of the INVALID/ABORTED entry with the
    // lowest sequence number, or -1.
    int last_invalid_slot() const;

    const OtaSelectEntry& entry(int i) const { return entries_[i]; }

private:
    static bool entry_invalid(const OtaSelectEntry& e);  // bootloader_common_ota_select_invalid
    static bool entry_valid(const OtaSelectEntry& e);    // bootloader_common_ota_select_valid
    static int select(const OtaSelectEntry* two, const bool* valid, bool max);  // ..._select_otadata
    int active() const;                                   // bootloader_common_get_active_otadata
    void rewrite(int index, uint32_t seq);                // rewrite_ota_seq

    OtaSelectEntry entries_[2];
};

}  // namespace mqota::linux_port
