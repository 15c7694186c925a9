#include "otadata.h"

#include <string.h>

#include "ota_agent/update_record.h"  // crc32_ieee

namespace mqota::linux_port {
namespace {

void put_le32(uint8_t* p, uint32_t v) {
    p[0] = static_cast<uint8_t>(v);
    p[1] = static_cast<uint8_t>(v >> 8);
    p[2] = static_cast<uint8_t>(v >> 16);
    p[3] = static_cast<uint8_t>(v >> 24);
}

uint32_t get_le32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
           static_cast<uint32_t>(p[3]) << 24;
}

int slot_of(uint32_t seq) { return static_cast<int>((seq - 1) % OtaData::kSlotCount); }

}  // namespace

uint32_t OtaData::entry_crc(const OtaSelectEntry& e) {
    // esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4): the ROM function inverts on entry and exit,
    // as crc32_ieee() does, so the same seed gives the same value.
    uint8_t seq[4];
    put_le32(seq, e.ota_seq);
    return crc32_ieee(0xFFFFFFFFu, seq, sizeof(seq));
}

void OtaData::load(const uint8_t* data, size_t len) {
    entries_[0] = OtaSelectEntry{};
    entries_[1] = OtaSelectEntry{};
    if (data == nullptr || len != kPartitionBytes) {
        return;
    }
    for (int i = 0; i < 2; ++i) {
        const uint8_t* p = data + i * kSectorBytes;
        entries_[i].ota_seq = get_le32(p);
        memcpy(entries_[i].seq_label, p + 4, sizeof(entries_[i].seq_label));
        entries_[i].ota_state = get_le32(p + 24);
        entries_[i].crc = get_le32(p + 28);
    }
}

void OtaData::store(uint8_t* out) const {
    memset(out, 0xFF, kPartitionBytes);
    for (int i = 0; i < 2; ++i) {
        uint8_t* p = out + i * kSectorBytes;
        put_le32(p, entries_[i].ota_seq);
        memcpy(p + 4, entries_[i].seq_label, sizeof(entries_[i].seq_label));
        put_le32(p + 24, entries_[i].ota_state);
        put_le32(p + 28, entries_[i].crc);
    }
}

bool OtaData::entry_invalid(const OtaSelectEntry& e) {
    return e.ota_seq == 0xFFFFFFFF || e.ota_state == static_cast<uint32_t>(OtaImgState::invalid) ||
           e.ota_state == static_cast<uint32_t>(OtaImgState::aborted);
}

bool OtaData::entry_valid(const OtaSelectEntry& e) { return !entry_invalid(e) && e.crc == entry_crc(e); }

int OtaData::select(const OtaSelectEntry* two, const bool* valid, bool max) {
    if (valid[0] && valid[1]) {
        const uint32_t a = two[0].ota_seq;
        const uint32_t b = two[1].ota_seq;
        const uint32_t pick = max ? (a > b ? a : b) : (a < b ? a : b);
        return pick == a ? 0 : 1;
    }
    for (int i = 0; i < 2; ++i) {
        if (valid[i]) {
            return i;
        }
    }
    return -1;
}

int OtaData::active() const {
    const bool valid[2] = {entry_valid(entries_[0]), entry_valid(entries_[1])};
    return select(entries_, valid, true);
}

void OtaData::rewrite(int index, uint32_t seq) {
    entries_[index].ota_seq = seq;
    entries_[index].crc = entry_crc(entries_[index]);
}

int OtaData::boot(const std::function<bool(int slot)>& image_valid) {
    // bootloader_utility_get_selected_boot_partition()
    for (auto& e : entries_) {
        if (e.ota_state == static_cast<uint32_t>(OtaImgState::pending_verify)) {
            e.ota_state = static_cast<uint32_t>(OtaImgState::aborted);
        }
    }
    bool initial_contents = false;
    int selected = 0;
    if (entry_invalid(entries_[0]) && entry_invalid(entries_[1])) {
        // No factory app: "No factory image, trying OTA 0".
        selected = 0;
        const bool blank0 = entries_[0].ota_seq == 0xFFFFFFFF || entries_[0].crc != entry_crc(entries_[0]);
        const bool blank1 = entries_[1].ota_seq == 0xFFFFFFFF || entries_[1].crc != entry_crc(entries_[1]);
        initial_contents = blank0 && blank1;
    } else {
        const int a = active();
        if (a >= 0) {
            selected = slot_of(entries_[a].ota_seq);
            if (entries_[a].ota_state == static_cast<uint32_t>(OtaImgState::new_image)) {
                entries_[a].ota_state = static_cast<uint32_t>(OtaImgState::pending_verify);
            }
        }
    }
    // bootloader_utility_load_boot_image(): the selected slot, then downwards, then upwards.
    int order[kSlotCount];
    int n = 0;
    for (int s = selected; s >= 0; --s) {
        order[n++] = s;
    }
    for (int s = selected + 1; s < kSlotCount; ++s) {
        order[n++] = s;
    }
    for (int i = 0; i < n; ++i) {
        const int slot = order[i];
        if (!image_valid(slot)) {
            continue;
        }
        if (initial_contents) {  // set_actual_ota_seq()
            entries_[0] = OtaSelectEntry{};
            entries_[0].ota_seq = static_cast<uint32_t>(slot + 1);
            entries_[0].ota_state = static_cast<uint32_t>(OtaImgState::valid);
            entries_[0].crc = entry_crc(entries_[0]);
        }
        return slot;
    }
    return -1;
}

void OtaData::set_boot(int slot) {
    // esp_rewrite_ota_data()
    const int a = active();
    if (a >= 0) {
        const uint32_t seq = entries_[a].ota_seq;
        uint32_t i = 0;
        while (seq > static_cast<uint32_t>((slot + 1) % kSlotCount) + i * kSlotCount) {
            ++i;
        }
        const int next = (~a) & 1;
        entries_[next].ota_state = static_cast<uint32_t>(OtaImgState::new_image);
        rewrite(next, static_cast<uint32_t>((slot + 1) % kSlotCount) + i * kSlotCount);
    } else {
        entries_[0].ota_state = static_cast<uint32_t>(OtaImgState::new_image);
        rewrite(0, static_cast<uint32_t>(slot + 1));
    }
}

bool OtaData::mark_valid(int running_slot) {
    const int a = active();
    if (a < 0 || slot_of(entries_[a].ota_seq) != running_slot) {
        return false;
    }
    entries_[a].ota_state = static_cast<uint32_t>(OtaImgState::valid);
    rewrite(a, entries_[a].ota_seq);
    return true;
}

bool OtaData::mark_invalid(int running_slot, const std::function<bool(int slot)>& image_valid) {
    const int a = active();
    if (a < 0 || slot_of(entries_[a].ota_seq) != running_slot) {
        return false;
    }
    // esp_ota_check_rollback_is_possible(): the other entry is valid and its slot holds a
    // valid image.
    const int other = (~a) & 1;
    if (!entry_valid(entries_[other]) || !image_valid(slot_of(entries_[other].ota_seq))) {
        return false;
    }
    entries_[a].ota_state = static_cast<uint32_t>(OtaImgState::invalid);
    rewrite(a, entries_[a].ota_seq);
    return true;
}

bool OtaData::state_of(int slot, OtaImgState* state) const {
    for (const auto& e : entries_) {
        if (slot_of(e.ota_seq) == slot && e.crc == entry_crc(e)) {
            *state = static_cast<OtaImgState>(e.ota_state);
            return true;
        }
    }
    return false;
}

int OtaData::last_invalid_slot() const {
    bool invalid[2];
    for (int i = 0; i < 2; ++i) {
        const OtaSelectEntry& e = entries_[i];
        invalid[i] = e.ota_seq != 0xFFFFFFFF && e.crc == entry_crc(e) &&
                     (e.ota_state == static_cast<uint32_t>(OtaImgState::invalid) ||
                      e.ota_state == static_cast<uint32_t>(OtaImgState::aborted));
    }
    const int i = select(entries_, invalid, false);
    return i < 0 ? -1 : slot_of(entries_[i].ota_seq);
}

}  // namespace mqota::linux_port
