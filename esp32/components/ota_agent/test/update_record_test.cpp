#include <gtest/gtest.h>
#include <string.h>

#include "ota_agent/update_record.h"

namespace mqota {
namespace {

UpdateRecord sample() {
    UpdateRecord r{};
    r.phase = RecordPhase::downloading;
    r.final_state = UpdateState::failed;
    r.final_reported = true;
    r.attempts = 3;
    r.size = 1234567;
    r.offset = 65536;
    for (size_t i = 0; i < kSha256Bytes; ++i) r.sha256[i] = static_cast<uint8_t>(i * 7);
    strcpy(r.update_id, "u_01J8Z");
    strcpy(r.target_version, "1.3.0");
    strcpy(r.target_slot, "ota_1");
    memset(r.url, 'u', kUrlMax);
    r.url[kUrlMax] = '\0';
    strcpy(r.etag, "\"abcdef\"");
    strcpy(r.error, "sha256-mismatch");
    strcpy(r.reason, "a reason");
    return r;
}

TEST(UpdateRecord, RoundTrips) {
    const UpdateRecord r = sample();
    uint8_t buf[kUpdateRecordMaxBytes];
    const size_t n = encode_update_record(r, buf, sizeof(buf));
    ASSERT_GT(n, 0u);
    UpdateRecord back{};
    ASSERT_TRUE(decode_update_record(buf, n, &back));
    EXPECT_EQ(back.phase, r.phase);
    EXPECT_EQ(back.final_state, r.final_state);
    EXPECT_EQ(back.final_reported, r.final_reported);
    EXPECT_EQ(back.attempts, r.attempts);
    EXPECT_EQ(back.size, r.size);
    EXPECT_EQ(back.offset, r.offset);
    EXPECT_EQ(memcmp(back.sha256, r.sha256, kSha256Bytes), 0);
    EXPECT_STREQ(back.update_id, r.update_id);
    EXPECT_STREQ(back.target_version, r.target_version);
    EXPECT_STREQ(back.target_slot, r.target_slot);
    EXPECT_STREQ(back.url, r.url);
    EXPECT_STREQ(back.etag, r.etag);
    EXPECT_STREQ(back.error, r.error);
    EXPECT_STREQ(back.reason, r.reason);
}

TEST(UpdateRecord, EveryFieldAtItsLimitFitsTheBuffer) {
    UpdateRecord r = sample();
    memset(r.update_id, 'i', kUpdateIdMax);
    memset(r.target_version, 'v', kVersionMax);
    memset(r.target_slot, 's', kSlotLabelMax);
    memset(r.etag, 'e', kEtagMax);
    memset(r.error, 'x', kErrorCodeMax);
    memset(r.reason, 'r', kReasonMax);
    uint8_t buf[kUpdateRecordMaxBytes];
    const size_t n = encode_update_record(r, buf, sizeof(buf));
    EXPECT_EQ(n, kUpdateRecordMaxBytes);
    UpdateRecord back{};
    EXPECT_TRUE(decode_update_record(buf, n, &back));
    EXPECT_EQ(strlen(back.reason), kReasonMax);
    EXPECT_EQ(encode_update_record(r, buf, n - 1), 0u);
}

TEST(UpdateRecord, RejectsCorruptionTruncationAndOtherFormats) {
    uint8_t buf[kUpdateRecordMaxBytes];
    const size_t n = encode_update_record(sample(), buf, sizeof(buf));
    UpdateRecord out{};
    for (size_t i = 0; i < n; ++i) {
        uint8_t copy[kUpdateRecordMaxBytes];
        memcpy(copy, buf, n);
        copy[i] ^= 0x01;
        EXPECT_FALSE(decode_update_record(copy, n, &out)) << "bit flip at " << i;
    }
    for (size_t len = 0; len < n; ++len) {
        EXPECT_FALSE(decode_update_record(buf, len, &out)) << "truncated to " << len;
    }
    EXPECT_FALSE(decode_update_record(nullptr, 0, &out));
}

TEST(Crc32, MatchesTheIeeeCheckValue) {
    const uint8_t check[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
    EXPECT_EQ(crc32_ieee(0, check, sizeof(check)), 0xCBF43926u);
}

}  // namespace
}  // namespace mqota
