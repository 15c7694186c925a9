#include "ota_agent/boot_result.h"

#include <string.h>

#include "ota_agent/semver.h"

namespace mqota {
namespace {

bool same_version(const char* a, const char* b) {
    int c = 0;
    if (semver_compare_text(a, b, &c)) {
        return c == 0;
    }
    return strcmp(a, b) == 0;
}

// The target of the stored update is what runs now.
bool runs_target(const UpdateRecord& r, const RunningImage& running) {
    return strcmp(running.slot, r.target_slot) == 0 &&
           same_version(running.image.app.version, r.target_version);
}

}  // namespace

const char* to_string(BootOutcome outcome) {
    switch (outcome) {
        case BootOutcome::normal: return "normal";
        case BootOutcome::verify_new_image: return "verify_new_image";
        case BootOutcome::update_succeeded: return "update_succeeded";
        case BootOutcome::rolled_back: return "rolled_back";
        case BootOutcome::resumable_download: return "resumable_download";
        case BootOutcome::report_final: return "report_final";
    }
    return "?";
}

BootResult evaluate_boot(const BootInputs& in) {
    const UpdateRecord& r = *in.record;
    const RunningImage& running = *in.running;
    const bool update_in_flight = r.phase == RecordPhase::downloading || r.phase == RecordPhase::flashed;

    // The ESP-IDF bootloader turns NEW into PENDING_VERIFY when it boots a new image
    // (bootloader_utility.c, CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE); this boot is the only one the
    // image gets before the bootloader marks it ABORTED, whatever the record says.
    if (running.state == SlotState::pending_verify || running.state == SlotState::new_image) {
        return BootResult{BootOutcome::verify_new_image, update_in_flight && runs_target(r, running)};
    }

    if (r.phase == RecordPhase::flashed) {
        // Boot slot was switched. Either the image booted and was confirmed (e.g. the device
        // reset after esp_ota_mark_app_valid_cancel_rollback() but before the outcome was saved),
        // or the bootloader went back to the previous slot: the new image was marked INVALID by
        // its self-test, or it was still PENDING_VERIFY at the next boot and became ABORTED.
        return BootResult{runs_target(r, running) ? BootOutcome::update_succeeded : BootOutcome::rolled_back,
                          true};
    }

    if (r.phase == RecordPhase::downloading) {
        // The boot slot is switched before the record says `flashed`; a reset in between
        // leaves `downloading` although the new image was already booted.
        if (runs_target(r, running)) {
            return BootResult{BootOutcome::update_succeeded, true};
        }
        if (in.last_invalid != nullptr && same_version(in.last_invalid->app.version, r.target_version)) {
            return BootResult{BootOutcome::rolled_back, true};
        }
        return BootResult{BootOutcome::resumable_download, true};
    }

    if (r.phase == RecordPhase::finished && !r.final_reported) {
        return BootResult{BootOutcome::report_final, true};
    }
    return BootResult{BootOutcome::normal, false};
}

}  // namespace mqota
