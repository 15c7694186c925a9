// The Linux port's otadata against the ESP-IDF bootloader and esp_ota_ops rules it mirrors.
#include <gtest/gtest.h>

#include "otadata.h"

namespace mqota::linux_port {
namespace {

const auto kBothValid = [](int) { return true; };

OtaImgState state(const OtaData& d, int slot) {
    OtaImgState s = OtaImgState::undefined;
    EXPECT_TRUE(d.state_of(slot, &s));
    return s;
}

TEST(OtaData, CrcIsTheRomCrcOfTheSequence) {
    // esp_rom_crc32_le(UINT32_MAX, &seq, 4) for seq = 1, as the bootloader computes it.
    OtaSelectEntry e;
    e.ota_seq = 1;
    EXPECT_EQ(OtaData::entry_crc(e), 0x4743989Au);  // bytes 9a 98 43 47 in an otadata dump
}

TEST(OtaData, BlankOtadataBootsOta0AndWritesItsSequence) {
    OtaData d;
    EXPECT_EQ(d.boot(kBothValid), 0);
    EXPECT_EQ(d.entry(0).ota_seq, 1u);
    EXPECT_EQ(state(d, 0), OtaImgState::valid);  // set_actual_ota_seq()
}

TEST(OtaData, NewImageBootsOncePendingVerifyThenIsAbortedIfNotConfirmed) {
    OtaData d;
    d.boot(kBothValid);
    d.set_boot(1);
    EXPECT_EQ(state(d, 1), OtaImgState::new_image);
    EXPECT_EQ(d.boot(kBothValid), 1);
    EXPECT_EQ(state(d, 1), OtaImgState::pending_verify);
    // Reset without esp_ota_mark_app_valid_cancel_rollback(): back to ota_0.
    EXPECT_EQ(d.boot(kBothValid), 0);
    EXPECT_EQ(state(d, 1), OtaImgState::aborted);
    EXPECT_EQ(d.last_invalid_slot(), 1);
}

TEST(OtaData, ConfirmedImageStays) {
    OtaData d;
    d.boot(kBothValid);
    d.set_boot(1);
    ASSERT_EQ(d.boot(kBothValid), 1);
    ASSERT_TRUE(d.mark_valid(1));
    EXPECT_EQ(d.boot(kBothValid), 1);
    EXPECT_EQ(state(d, 1), OtaImgState::valid);
    EXPECT_EQ(d.last_invalid_slot(), -1);
}

TEST(OtaData, MarkInvalidRollsBackToThePreviousSlot) {
    OtaData d;
    d.boot(kBothValid);
    d.set_boot(1);
    ASSERT_EQ(d.boot(kBothValid), 1);
    ASSERT_TRUE(d.mark_invalid(1, kBothValid));
    EXPECT_EQ(state(d, 1), OtaImgState::invalid);
    EXPECT_EQ(d.boot(kBothValid), 0);
    EXPECT_EQ(d.last_invalid_slot(), 1);
}

TEST(OtaData, RollbackIsImpossibleWithoutAnotherValidImage) {
    OtaData d;
    d.boot(kBothValid);
    d.set_boot(1);
    ASSERT_EQ(d.boot(kBothValid), 1);
    EXPECT_FALSE(d.mark_invalid(1, [](int slot) { return slot == 1; }));
    EXPECT_EQ(state(d, 1), OtaImgState::pending_verify);
}

TEST(OtaData, SequenceKeepsAlternatingSlots) {
    OtaData d;
    d.boot(kBothValid);
    for (int round = 0; round < 5; ++round) {
        const int target = (round + 1) % 2;
        d.set_boot(target);
        ASSERT_EQ(d.boot(kBothValid), target) << "round " << round;
        ASSERT_TRUE(d.mark_valid(target));
    }
    EXPECT_EQ(d.entry(0).ota_seq + d.entry(1).ota_seq, 11u);  // 5 and 6
}

TEST(OtaData, FallsBackWhenTheSelectedImageIsCorrupt) {
    OtaData d;
    d.boot(kBothValid);
    d.set_boot(1);
    EXPECT_EQ(d.boot([](int slot) { return slot == 0; }), 0);
    EXPECT_EQ(d.boot([](int) { return false; }), -1);
}

TEST(OtaData, StoresAndLoadsThePartitionLayout) {
    OtaData d;
    d.boot(kBothValid);
    d.set_boot(1);
    uint8_t raw[OtaData::kPartitionBytes];
    d.store(raw);
    EXPECT_EQ(raw[0], 1);                        // otadata[0].ota_seq = 1
    EXPECT_EQ(raw[OtaData::kSectorBytes], 2);    // otadata[1].ota_seq = 2, second sector
    EXPECT_EQ(raw[OtaData::kSectorBytes + 24], 0);  // ota_state NEW
    OtaData back;
    back.load(raw, sizeof(raw));
    EXPECT_EQ(back.boot(kBothValid), 1);
}

}  // namespace
}  // namespace mqota::linux_port
