// What a boot means for the update the device remembers: the decision made once at start-up,
// before the network is up, from the running slot's otadata state and the stored UpdateRecord.
#pragma once

#include "ota_agent/image_format.h"
#include "ota_agent/platform.h"
#include "ota_agent/update_record.h"

namespace mqota {

enum class BootOutcome : uint8_t {
    normal,              // nothing to do or report
    verify_new_image,    // first boot of a new image (PENDING_VERIFY): self-test, then confirm
    update_succeeded,    // the target image runs and is already valid: report `succeeded`
    rolled_back,         // the previous image runs again: report `rolled_back`
    resumable_download,  // a download was interrupted; resume it when the command comes again
    report_final,        // an outcome was stored but never acknowledged by the broker
};

const char* to_string(BootOutcome outcome);

struct BootInputs {
    const UpdateRecord* record;
    const RunningImage* running;
    const ImageDescription* last_invalid;  // nullptr if no slot is marked INVALID/ABORTED
};

struct BootResult {
    BootOutcome outcome;
    // For verify_new_image: whether the stored update is the one that installed this image
    // (false after e.g. a USB flash of a new image: verify it, but report nothing).
    bool record_matches;
};

BootResult evaluate_boot(const BootInputs& inputs);

}  // namespace mqota
