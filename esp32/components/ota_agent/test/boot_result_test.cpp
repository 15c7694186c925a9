#include <gtest/gtest.h>
#include <string.h>

#include "ota_agent/boot_result.h"

namespace mqota {
namespace {

struct Boot {
    UpdateRecord record{};
    RunningImage running{};
    ImageDescription invalid{};
    bool has_invalid = false;

    Boot() {
        strcpy(running.slot, "ota_0");
        strcpy(running.passive_slot, "ota_1");
        strcpy(running.image.app.version, "1.2.0");
        running.state = SlotState::valid;
        strcpy(record.update_id, "u_1");
        strcpy(record.target_version, "1.3.0");
        strcpy(record.target_slot, "ota_1");
    }
    void runs(const char* slot, const char* version, SlotState state) {
        strcpy(running.slot, slot);
        strcpy(running.image.app.version, version);
        running.state = state;
    }
    BootResult eval() const { return evaluate_boot(BootInputs{&record, &running, has_invalid ? &invalid : nullptr}); }
};

TEST(BootResult, NothingStoredIsANormalBoot) {
    Boot b;
    b.record = UpdateRecord{};
    EXPECT_EQ(b.eval().outcome, BootOutcome::normal);
}

TEST(BootResult, PendingVerifyAlwaysNeedsTheSelfTest) {
    Boot b;
    b.record.phase = RecordPhase::flashed;
    b.runs("ota_1", "1.3.0", SlotState::pending_verify);
    BootResult r = b.eval();
    EXPECT_EQ(r.outcome, BootOutcome::verify_new_image);
    EXPECT_TRUE(r.record_matches);

    b.record = UpdateRecord{};  // e.g. flashed over USB with rollback enabled
    r = b.eval();
    EXPECT_EQ(r.outcome, BootOutcome::verify_new_image);
    EXPECT_FALSE(r.record_matches);
}

TEST(BootResult, ResetBetweenSetBootAndSavingFlashedStillMatches) {
    Boot b;
    b.record.phase = RecordPhase::downloading;
    b.runs("ota_1", "v1.3.0", SlotState::pending_verify);
    const BootResult r = b.eval();
    EXPECT_EQ(r.outcome, BootOutcome::verify_new_image);
    EXPECT_TRUE(r.record_matches) << "v1.3.0 and 1.3.0 are the same version";
}

TEST(BootResult, FlashedAndRunningTheTargetSucceeded) {
    Boot b;
    b.record.phase = RecordPhase::flashed;
    b.runs("ota_1", "1.3.0", SlotState::valid);
    EXPECT_EQ(b.eval().outcome, BootOutcome::update_succeeded);
    b.runs("ota_1", "1.3.0", SlotState::undefined);  // rollback disabled in the bootloader
    EXPECT_EQ(b.eval().outcome, BootOutcome::update_succeeded);
}

TEST(BootResult, FlashedButRunningThePreviousImageRolledBack) {
    Boot b;
    b.record.phase = RecordPhase::flashed;
    b.runs("ota_0", "1.2.0", SlotState::valid);  // new image ABORTED (crash) or INVALID (self-test)
    EXPECT_EQ(b.eval().outcome, BootOutcome::rolled_back);
}

TEST(BootResult, InterruptedDownloadCanResume) {
    Boot b;
    b.record.phase = RecordPhase::downloading;
    b.record.offset = 4096;
    EXPECT_EQ(b.eval().outcome, BootOutcome::resumable_download);
}

TEST(BootResult, DownloadingRecordButTargetMarkedInvalidRolledBack) {
    Boot b;
    b.record.phase = RecordPhase::downloading;
    b.has_invalid = true;
    strcpy(b.invalid.app.version, "1.3.0");
    EXPECT_EQ(b.eval().outcome, BootOutcome::rolled_back);
    strcpy(b.invalid.app.version, "1.1.0");  // an older failure, not this update
    EXPECT_EQ(b.eval().outcome, BootOutcome::resumable_download);
}

TEST(BootResult, DownloadingRecordAndTargetRunningSucceeded) {
    Boot b;
    b.record.phase = RecordPhase::downloading;
    b.runs("ota_1", "1.3.0", SlotState::valid);
    EXPECT_EQ(b.eval().outcome, BootOutcome::update_succeeded);
}

TEST(BootResult, UnacknowledgedOutcomeIsReportedAgain) {
    Boot b;
    b.record.phase = RecordPhase::finished;
    b.record.final_state = UpdateState::failed;
    b.record.final_reported = false;
    EXPECT_EQ(b.eval().outcome, BootOutcome::report_final);
    b.record.final_reported = true;
    EXPECT_EQ(b.eval().outcome, BootOutcome::normal);
}

}  // namespace
}  // namespace mqota
