#include "ota_agent/platform.h"

namespace mqota {

const char* to_string(SlotState state) {
    switch (state) {
        case SlotState::undefined: return "undefined";
        case SlotState::new_image: return "new";
        case SlotState::pending_verify: return "pending-verify";
        case SlotState::valid: return "valid";
        case SlotState::invalid: return "invalid";
        case SlotState::aborted: return "aborted";
    }
    return "?";
}

const char* to_string(TransferStatus status) {
    switch (status) {
        case TransferStatus::ok: return "ok";
        case TransferStatus::in_progress: return "in progress";
        case TransferStatus::complete: return "complete";
        case TransferStatus::transient_error: return "transient error";
        case TransferStatus::permanent_error: return "permanent error";
    }
    return "?";
}

}  // namespace mqota
