#include "ota_agent/update_agent.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ota_agent/semver.h"

namespace mqota {
namespace {

template <size_t N>
void copy_text(char (&out)[N], const char* in) {
    snprintf(out, N, "%s", in != nullptr ? in : "");
}

bool same_version(const char* a, const char* b) {
    int c = 0;
    return semver_compare_text(a, b, &c) ? c == 0 : strcmp(a, b) == 0;
}

bool valid_type(const char* type) {
    const size_t len = strlen(type);
    if (len == 0 || len > kTypeMax) {
        return false;
    }
    for (const char* p = type; *p != '\0'; ++p) {
        const char c = *p;
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                        c == '_' || c == '.' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

// RFC 9110 §13.1.5: If-Range and range resumption need a strong validator.
bool is_strong_etag(const char* etag) { return etag[0] == '"' && strlen(etag) >= 2; }

uint32_t clamp_delay(uint64_t ms) { return ms >= UpdateAgent::kNoDeadline ? UpdateAgent::kNoDeadline - 1 : static_cast<uint32_t>(ms); }

}  // namespace

const char* to_string(AgentState state) {
    switch (state) {
        case AgentState::booting: return "booting";
        case AgentState::verifying_image: return "verifying_image";
        case AgentState::idle: return "idle";
        case AgentState::accepted: return "accepted";
        case AgentState::downloading: return "downloading";
        case AgentState::retry_wait: return "retry_wait";
        case AgentState::rebooting: return "rebooting";
        case AgentState::halted: return "halted";
    }
    return "?";
}

UpdateAgent::UpdateAgent(DevicePort& port, const AgentConfig& config) : port_(port), config_(config) {}

// ---------------------------------------------------------------------------------------------
// Boot

bool UpdateAgent::start() {
    if (!topics_.init(config_.device_id)) {
        logf(LogLevel::error, "invalid device id \"%s\": 1-64 characters of [A-Za-z0-9_.-], not starting with '.'",
             config_.device_id != nullptr ? config_.device_id : "");
        state_ = AgentState::halted;
        return false;
    }
    if (!port_.describe_running_image(&running_)) {
        logf(LogLevel::error, "cannot read the running image description");
        state_ = AgentState::halted;
        return false;
    }
    const char* type = (config_.device_type != nullptr && config_.device_type[0] != '\0')
                           ? config_.device_type
                           : running_.image.app.project_name;
    if (!valid_type(type)) {
        logf(LogLevel::error, "firmware type \"%s\" is not [A-Za-z0-9_.-]{1,64}; set the device type explicitly", type);
        state_ = AgentState::halted;
        return false;
    }
    copy_text(type_, type);
    load_record();

    ImageDescription last_invalid{};
    const bool has_invalid = port_.describe_last_invalid_image(&last_invalid);
    boot_ = evaluate_boot(BootInputs{&record_, &running_, has_invalid ? &last_invalid : nullptr});
    logf(LogLevel::info, "boot: %s %s in %s (%s), chip %s; boot outcome %s", type_, running_.image.app.version,
         running_.slot, to_string(running_.state), running_.chip, to_string(boot_.outcome));

    state_ = AgentState::idle;
    switch (boot_.outcome) {
        case BootOutcome::verify_new_image:
            state_ = AgentState::verifying_image;
            self_test_deadline_ms_ = port_.now_ms() + config_.self_test_timeout_ms;
            logf(LogLevel::info, "first boot of this image: it must reach the broker within %u ms",
                 static_cast<unsigned>(config_.self_test_timeout_ms));
            if (!port_.application_self_test()) {
                finish_self_test(false, "application self-test failed");
            }
            break;
        case BootOutcome::update_succeeded:
            finish_record(UpdateState::succeeded, nullptr, nullptr);
            break;
        case BootOutcome::rolled_back: {
            char error[kErrorCodeMax + 1];
            char reason[kReasonMax + 1];
            copy_text(error, record_.error[0] != '\0' ? record_.error : "not-confirmed");
            copy_text(reason, record_.reason[0] != '\0'
                                  ? record_.reason
                                  : "new image reset before confirming itself; bootloader returned to the previous image");
            logf(LogLevel::warn, "update %s to %s was rolled back: %s", record_.update_id, record_.target_version, reason);
            finish_record(UpdateState::rolled_back, error, reason);
            break;
        }
        case BootOutcome::resumable_download:
            logf(LogLevel::info, "download of update %s stopped at %u of %u bytes; it resumes when the command is repeated",
                 record_.update_id, static_cast<unsigned>(record_.offset), static_cast<unsigned>(record_.size));
            break;
        case BootOutcome::report_final:
        case BootOutcome::normal:
            break;
    }
    return true;
}

void UpdateAgent::finish_self_test(bool passed, const char* why) {
    if (passed && !port_.confirm_running_image()) {
        passed = false;
        why = "could not mark the image valid in otadata";
    }
    if (passed) {
        logf(LogLevel::info, "self-test passed: %s %s confirmed", type_, running_.image.app.version);
        running_.state = SlotState::valid;
        if (boot_.record_matches) {
            finish_record(UpdateState::succeeded, nullptr, nullptr);
        }
        state_ = AgentState::idle;
        return;
    }
    logf(LogLevel::error, "self-test failed: %s; rolling back to the previous image", why);
    if (boot_.record_matches) {
        // Stays `flashed` (or `downloading`); the previous image reports rolled_back with this.
        copy_text(record_.error, "self-test-failed");
        copy_text(record_.reason, why);
        save_record();
    }
    state_ = AgentState::rebooting;
    if (port_.reject_running_image_and_reboot()) {
        return;
    }
    // ESP_ERR_OTA_ROLLBACK_FAILED: no other valid image. Keep running this one.
    logf(LogLevel::error, "rollback impossible: no other valid image; keeping %s", running_.image.app.version);
    state_ = AgentState::idle;
    if (boot_.record_matches) {
        finish_record(UpdateState::failed, "self-test-failed", "self-test failed and no image to roll back to");
    }
}

// ---------------------------------------------------------------------------------------------
// Connection

void UpdateAgent::on_connected(bool session_present) {
    connected_ = true;
    logf(LogLevel::info, "connected to the broker (session present: %s)", session_present ? "yes" : "no");
    if (state_ == AgentState::verifying_image) {
        if (port_.now_ms() <= self_test_deadline_ms_) {
            finish_self_test(true, nullptr);
        } else {
            finish_self_test(false, "broker reached after the self-test deadline");
        }
    }
    if (state_ == AgentState::rebooting || state_ == AgentState::halted || state_ == AgentState::booting) {
        return;
    }
    if (!session_present) {
        // [MQTT-3.2.2-2]: without a stored session the broker holds no subscription for us;
        // subscribe before announcing so the answer to the announce is not lost.
        awaiting_suback_ = port_.subscribe(topics_.command());
        if (!awaiting_suback_) {
            logf(LogLevel::warn, "subscribe to %s failed; retrying on the next connection", topics_.command());
        }
        return;
    }
    after_subscribed();
}

void UpdateAgent::on_subscribed(bool granted) {
    if (!awaiting_suback_) {
        return;
    }
    awaiting_suback_ = false;
    if (!granted) {
        // docs/protocol.md: SUBACK 0x80 when the topic is not this client's own command topic.
        logf(LogLevel::error, "broker refused the subscription to %s; is the MQTT client id the certificate CN?",
             topics_.command());
    }
    after_subscribed();
}

void UpdateAgent::on_disconnected() {
    if (connected_) {
        logf(LogLevel::warn, "disconnected from the broker");
    }
    connected_ = false;
    awaiting_suback_ = false;
}

void UpdateAgent::after_subscribed() {
    // docs/protocol.md lifecycle: report the outcome of the last update, then announce.
    publish_final_if_pending();
    announce();
}

void UpdateAgent::announce() {
    DeviceHealth health{};
    const bool has_health = port_.read_health(&health);
    const Announce a{type_, running_.image.app.version, running_.chip[0] != '\0' ? running_.chip : nullptr,
                     running_.image.app.idf_ver[0] != '\0' ? running_.image.app.idf_ver : nullptr,
                     running_.image.app.secure_version, running_.slot[0] != '\0' ? running_.slot : nullptr,
                     has_health ? &health : nullptr};
    const size_t len = encode_announce(a, message_, sizeof(message_));
    if (len == 0 || !port_.publish(topics_.announce(), message_, len)) {
        logf(LogLevel::warn, "announce not sent");
        return;
    }
    logf(LogLevel::info, "announced %s %s (%s)", type_, running_.image.app.version, running_.slot);
}

void UpdateAgent::publish_final_if_pending() {
    if (record_.phase != RecordPhase::finished || record_.final_reported || !connected_) {
        return;
    }
    report_for(record_.update_id, record_.final_state, record_.error, record_.reason);
    // Mark it reported only once the broker acknowledged it; otherwise the next connection
    // (or boot) sends it again, and the server ignores the duplicate.
    if (port_.flush_publications(config_.reboot_flush_timeout_ms)) {
        record_.final_reported = true;
        save_record();
    }
}

// ---------------------------------------------------------------------------------------------
// Commands

void UpdateAgent::on_message(const char* topic, const char* payload, size_t len) {
    if (strcmp(topic, topics_.command()) != 0) {
        logf(LogLevel::warn, "message on unexpected topic %s ignored", topic);
        return;
    }
    if (state_ == AgentState::verifying_image || state_ == AgentState::rebooting ||
        state_ == AgentState::halted || state_ == AgentState::booting) {
        logf(LogLevel::warn, "command ignored in state %s", to_string(state_));
        return;
    }
    const DecodeResult result = decode_command(payload, len, &command_);
    if (result.status != DecodeStatus::ok) {
        char reason[kReasonMax + 1];
        snprintf(reason, sizeof(reason), "cannot parse command: %s%s%s", to_string(result.status),
                 result.field != nullptr ? ": " : "", result.field != nullptr ? result.field : "");
        logf(LogLevel::warn, "%s", reason);
        if (result.has_update_id && command_.action != CommandAction::cancel) {
            report_for(command_.update_id, UpdateState::rejected, "invalid-command", reason);
        }
        return;
    }
    switch (command_.action) {
        case CommandAction::none:
            logf(LogLevel::info, "no update offered (%s)%s%s", command_.reason[0] != '\0' ? command_.reason : "no reason given",
                 command_.error[0] != '\0' ? ": " : "", command_.error);
            break;
        case CommandAction::cancel:
            handle_cancel(command_);
            break;
        case CommandAction::update:
            handle_update(command_);
            break;
    }
}

bool UpdateAgent::is_current_update(const char* update_id) const {
    const bool busy = state_ == AgentState::accepted || state_ == AgentState::downloading ||
                      state_ == AgentState::retry_wait || state_ == AgentState::rebooting;
    return busy && strcmp(record_.update_id, update_id) == 0;
}

void UpdateAgent::handle_update(const Command& command) {
    const UpdateTarget& t = command.target;
    if (is_current_update(command.update_id)) {
        // QoS 1 redelivery or a resend: docs/protocol.md says ignore it.
        logf(LogLevel::info, "update %s: duplicate of the update in progress, ignored", command.update_id);
        return;
    }
    if (record_.phase == RecordPhase::finished && strcmp(record_.update_id, command.update_id) == 0) {
        logf(LogLevel::info, "update %s already ended %s; reporting it again", command.update_id,
             to_string(record_.final_state));
        report_for(record_.update_id, record_.final_state, record_.error, record_.reason);
        return;
    }
    if (!command_is_trusted(command)) {
        return;
    }
    if (state_ != AgentState::idle) {
        char reason[kReasonMax + 1];
        snprintf(reason, sizeof(reason), "update %s is in progress", record_.update_id);
        report_for(command.update_id, UpdateState::rejected, "busy", reason);
        return;
    }
    const char* error = nullptr;
    char reason[kReasonMax + 1] = {};
    if (!validate_command(t, &error, reason, sizeof(reason))) {
        logf(LogLevel::warn, "update %s rejected: %s", command.update_id, reason);
        report_for(command.update_id, UpdateState::rejected, error, reason);
        return;
    }
    if (application_defers(command)) {
        return;
    }

    // Resume the interrupted download if this command names the same image for the same slot
    // (the image is content-addressed: same URL, sha256 and size mean the same bytes). Whether
    // the bytes may really be kept is decided when the server answers (206 + same ETag).
    const bool same_image = record_.phase == RecordPhase::downloading && strcmp(record_.url, t.url) == 0 &&
                            memcmp(record_.sha256, t.sha256, kSha256Bytes) == 0 && record_.size == t.size &&
                            strcmp(record_.target_slot, running_.passive_slot) == 0;
    const bool same_update = same_image && strcmp(record_.update_id, command.update_id) == 0;
    if (!same_image) {
        record_ = UpdateRecord{};
        record_.size = t.size;
        memcpy(record_.sha256, t.sha256, kSha256Bytes);
        copy_text(record_.url, t.url);
        copy_text(record_.target_slot, running_.passive_slot);
    }
    record_.phase = RecordPhase::downloading;
    copy_text(record_.update_id, command.update_id);
    // The version the new image will report when it runs: its own string when the server sent it.
    exact_image_version_ = t.image_version[0] != '\0';
    copy_text(record_.target_version, exact_image_version_ ? t.image_version : t.version);
    record_.error[0] = '\0';
    record_.reason[0] = '\0';
    save_record();

    state_ = AgentState::accepted;
    download_started_ = false;
    transfer_open_ = false;
    last_progress_ = -1;
    saved_offset_ = record_.offset;
    bytes_in_slot_ = record_.offset;
    logf(LogLevel::info, "update %s accepted: %s %s, %u bytes%s", record_.update_id, type_, t.version,
         static_cast<unsigned>(t.size), same_image && record_.offset > 0 ? " (resuming the earlier download)" : "");
    if (!same_update) {
        report(UpdateState::accepted, -1, nullptr, nullptr, nullptr);
    }
}

bool UpdateAgent::command_is_trusted(const Command& command) {
    if (!config_.require_signed_commands) {
        return true;
    }
    char reason[kReasonMax + 1] = {};
    bool clock_unknown = false;
    CommandTrust trust = CommandTrust::bad_signature;
    if (config_.trust == nullptr) {
        snprintf(reason, sizeof(reason), "signed commands required but this build has no signature check");
    } else {
        trust = check_command(*config_.trust, config_.device_id, command, &clock_unknown, reason, sizeof(reason));
    }
    if (trust != CommandTrust::ok) {
        logf(LogLevel::warn, "update %s refused: %s", command.update_id, reason);
        report_for(command.update_id, UpdateState::rejected, error_code(trust), reason);
        return false;
    }
    if (clock_unknown) {
        logf(LogLevel::warn, "update %s: signature valid; expiry not checked, the clock is not set", command.update_id);
    }
    return true;
}

bool UpdateAgent::validate_command(const UpdateTarget& t, const char** error, char* reason, size_t cap) {
    if (strcmp(t.type, type_) != 0) {
        *error = "wrong-type";
        snprintf(reason, cap, "firmware type %s does not match this device's type %s", t.type, type_);
        return false;
    }
    SemVer target;
    if (!semver_parse(t.version, &target)) {
        *error = "invalid-command";
        snprintf(reason, cap, "version \"%s\" is not a semantic version", t.version);
        return false;
    }
    if (!version_is_acceptable("version", t.version, target, error, reason, cap)) {
        return false;
    }
    if (t.image_version[0] != '\0' && strcmp(t.image_version, running_.image.app.version) == 0) {
        *error = "not-newer";
        snprintf(reason, cap, "image version %s is the running one", t.image_version);
        return false;
    }
    if (t.size > running_.passive_slot_size) {
        *error = "too-large";
        snprintf(reason, cap, "image of %u bytes does not fit the passive slot %s (%u bytes)",
                 static_cast<unsigned>(t.size), running_.passive_slot, static_cast<unsigned>(running_.passive_slot_size));
        return false;
    }
    if (t.size < kImagePrefixBytes) {
        *error = "invalid-command";
        snprintf(reason, cap, "image of %u bytes is smaller than an image header", static_cast<unsigned>(t.size));
        return false;
    }
    return true;
}

void UpdateAgent::handle_cancel(const Command& command) {
    if (is_current_update(command.update_id)) {
        if (!download_started_ && (state_ == AgentState::accepted || state_ == AgentState::retry_wait)) {
            if (transfer_open_) {
                port_.transfer_abort();
                transfer_open_ = false;
            }
            logf(LogLevel::info, "update %s cancelled before its download started: dropped", command.update_id);
            record_ = UpdateRecord{};
            save_record();
            state_ = AgentState::idle;
            return;
        }
        // docs/protocol.md: a device that has started downloading may finish the update.
        logf(LogLevel::info, "cancel of update %s ignored: its download has started", command.update_id);
        return;
    }
    if (state_ == AgentState::idle && record_.phase == RecordPhase::downloading &&
        strcmp(record_.update_id, command.update_id) == 0) {
        logf(LogLevel::info, "update %s cancelled: the interrupted download will not resume", command.update_id);
        record_ = UpdateRecord{};
        save_record();
        return;
    }
    logf(LogLevel::info, "cancel of update %s ignored: not the current update", command.update_id);
}

void UpdateAgent::shutdown() {
    if (transfer_open_) {
        port_.transfer_abort();
        transfer_open_ = false;
        record_.offset = bytes_in_slot_;
        save_record();
        logf(LogLevel::info, "download of update %s stopped at %u of %u bytes", record_.update_id,
             static_cast<unsigned>(bytes_in_slot_), static_cast<unsigned>(record_.size));
    }
    state_ = AgentState::halted;
}

// ---------------------------------------------------------------------------------------------
// Download

uint32_t UpdateAgent::service() {
    const uint64_t now = port_.now_ms();
    switch (state_) {
        case AgentState::verifying_image:
            if (now >= self_test_deadline_ms_) {
                char why[kReasonMax + 1];
                snprintf(why, sizeof(why), "broker not reached within %u ms", static_cast<unsigned>(config_.self_test_timeout_ms));
                finish_self_test(false, why);
                return state_ == AgentState::idle ? 0 : kNoDeadline;
            }
            return clamp_delay(self_test_deadline_ms_ - now);
        case AgentState::accepted:
            open_transfer();
            return 0;
        case AgentState::downloading:
            step_transfer();
            return 0;
        case AgentState::retry_wait:
            if (now >= retry_at_ms_) {
                state_ = AgentState::accepted;
                return 0;
            }
            return clamp_delay(retry_at_ms_ - now);
        case AgentState::booting:
        case AgentState::idle:
        case AgentState::rebooting:
        case AgentState::halted:
            break;
    }
    return kNoDeadline;
}

void UpdateAgent::open_transfer() {
    const bool resume = record_.offset > 0 && is_strong_etag(record_.etag);
    const TransferRequest request{record_.url, record_.size, resume ? record_.offset : 0u,
                                  resume ? record_.etag : nullptr};
    TransferStart start{};
    const TransferStatus status = port_.transfer_open(request, &start);
    if (status != TransferStatus::ok) {
        char why[kReasonMax + 1];
        snprintf(why, sizeof(why), "download did not start (%s, HTTP %d)", to_string(status), start.http_status);
        logf(LogLevel::warn, "GET %s: %s", record_.url, why);
        if (status == TransferStatus::permanent_error) {
            fail_update("download-failed", why);
        } else {
            transfer_interrupted(why);
        }
        return;
    }
    transfer_open_ = true;

    if (start.offset > 0) {
        // Resume only on 206 Partial Content carrying the same strong ETag as the bytes we
        // kept; anything else could splice two different bodies into one image.
        const bool trusted = resume && start.http_status == 206 && strcmp(start.etag, record_.etag) == 0 &&
                             start.offset <= record_.offset;
        if (!trusted) {
            logf(LogLevel::warn, "resume not trusted (HTTP %d, ETag %s, kept %s): restarting from zero",
                 start.http_status, start.etag[0] != '\0' ? start.etag : "none", record_.etag);
            port_.transfer_abort();
            transfer_open_ = false;
            record_.offset = 0;
            record_.etag[0] = '\0';
            save_record();
            saved_offset_ = 0;
            bytes_in_slot_ = 0;
            return;  // still `accepted`: the next service() opens from zero
        }
        logf(LogLevel::info, "resuming at byte %u of %u (HTTP 206, ETag %s)", static_cast<unsigned>(start.offset),
             static_cast<unsigned>(record_.size), start.etag);
        record_.offset = start.offset;
    } else {
        if (resume) {
            logf(LogLevel::info, "server sent the whole image (HTTP %d): restarting from zero", start.http_status);
        }
        record_.offset = 0;
        copy_text(record_.etag, is_strong_etag(start.etag) ? start.etag : "");
        save_record();
    }
    saved_offset_ = record_.offset;
    bytes_in_slot_ = record_.offset;

    const char* error = nullptr;
    char reason[kReasonMax + 1] = {};
    if (!validate_image(start.image, &error, reason, sizeof(reason))) {
        fail_update(error, reason);
        return;
    }
    download_started_ = true;
    state_ = AgentState::downloading;
    report_progress(record_.offset, true);
}

bool UpdateAgent::version_is_acceptable(const char* what, const char* version, const SemVer& parsed,
                                        const char** error, char* reason, size_t cap) {
    SemVer running;
    if (semver_parse(running_.image.app.version, &running) && semver_compare(parsed, running) <= 0) {
        *error = "not-newer";
        snprintf(reason, cap, "%s %s is not newer than the running %s", what, version, running_.image.app.version);
        return false;
    }
    ImageDescription last_invalid{};
    if (port_.describe_last_invalid_image(&last_invalid) && same_version(last_invalid.app.version, version)) {
        *error = "previously-rolled-back";
        snprintf(reason, cap, "version %s was rolled back on this device", version);
        return false;
    }
    return true;
}

bool UpdateAgent::validate_image(const ImageDescription& image, const char** error, char* reason, size_t cap) {
    // Checked on the image header before any byte is written (esp_https_ota_get_img_desc).
    const AppDescription& app = image.app;
    if (strcmp(app.project_name, type_) != 0) {
        *error = "wrong-type";
        snprintf(reason, cap, "image project name %s is not this device's type %s", app.project_name, type_);
        return false;
    }
    if (image.chip_id != running_.image.chip_id) {
        *error = "chip-mismatch";
        snprintf(reason, cap, "image is for chip id 0x%04x, this device runs 0x%04x", image.chip_id,
                 running_.image.chip_id);
        return false;
    }
    if (exact_image_version_) {
        // The server named the image's own version string: it must be exactly that. Whether it
        // is newer was decided on the catalog version, which is semver.
        if (strcmp(app.version, record_.target_version) != 0) {
            *error = "version-mismatch";
            snprintf(reason, cap, "image version \"%s\" differs from the commanded \"%s\"", app.version, record_.target_version);
            return false;
        }
    } else {
        SemVer image_version;
        if (!semver_parse(app.version, &image_version)) {
            *error = "invalid-image";
            snprintf(reason, cap, "image version \"%s\" is not a semantic version", app.version);
            return false;
        }
        if (!same_version(app.version, record_.target_version)) {
            *error = "version-mismatch";
            snprintf(reason, cap, "image version %s differs from the commanded %s", app.version, record_.target_version);
            return false;
        }
        if (!version_is_acceptable("image version", app.version, image_version, error, reason, cap)) {
            return false;
        }
    }
    const uint32_t hw_secure_version = port_.hardware_secure_version();
    if (app.secure_version < hw_secure_version) {
        // The bootloader would refuse to boot it (CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK).
        *error = "secure-version";
        snprintf(reason, cap, "image secure_version %u is below the eFuse secure version %u",
                 static_cast<unsigned>(app.secure_version), static_cast<unsigned>(hw_secure_version));
        return false;
    }
    return true;
}

void UpdateAgent::step_transfer() {
    uint32_t bytes = bytes_in_slot_;
    const TransferStatus status = port_.transfer_step(&bytes);
    // Also after an error: the bytes that did reach the slot are the resume point.
    bytes_in_slot_ = bytes;
    if (bytes_in_slot_ > record_.size) {
        char reason[kReasonMax + 1];
        snprintf(reason, sizeof(reason), "server sent more than the %u bytes announced", static_cast<unsigned>(record_.size));
        fail_update("size-mismatch", reason);
        return;
    }
    switch (status) {
        case TransferStatus::in_progress:
            if (bytes_in_slot_ >= saved_offset_ + config_.offset_save_bytes) {
                record_.offset = bytes_in_slot_;
                save_record();
                saved_offset_ = bytes_in_slot_;
            }
            report_progress(bytes_in_slot_, false);
            return;
        case TransferStatus::complete:
            record_.offset = bytes_in_slot_;
            report_progress(bytes_in_slot_, false);
            complete_transfer();
            return;
        case TransferStatus::permanent_error:
            fail_update("download-failed", "the platform refused the image data");
            return;
        case TransferStatus::transient_error:
        case TransferStatus::ok:
            transfer_interrupted("connection lost");
            return;
    }
}

void UpdateAgent::complete_transfer() {
    if (bytes_in_slot_ != record_.size) {
        char reason[kReasonMax + 1];
        snprintf(reason, sizeof(reason), "received %u bytes, expected %u", static_cast<unsigned>(bytes_in_slot_),
                 static_cast<unsigned>(record_.size));
        fail_update("size-mismatch", reason);
        return;
    }
    // Hash what is in the slot, not what went over the wire: this covers bytes written before
    // a reboot and resumed ranges as well.
    uint8_t digest[kSha256Bytes];
    if (!port_.slot_sha256(record_.size, digest)) {
        fail_update("flash-read-failed", "could not read the passive slot back");
        return;
    }
    if (memcmp(digest, record_.sha256, kSha256Bytes) != 0) {
        char got[2 * kSha256Bytes + 1];
        char want[2 * kSha256Bytes + 1];
        sha256_to_hex(digest, got);
        sha256_to_hex(record_.sha256, want);
        char reason[kReasonMax + 1];
        snprintf(reason, sizeof(reason), "sha256 %.16s... of the written image, expected %.16s...", got, want);
        record_.offset = 0;  // never resume onto bytes that hash wrong
        record_.etag[0] = '\0';
        fail_update("sha256-mismatch", reason);
        return;
    }
    if (config_.image_keys.count > 0) {
        char reason[kReasonMax + 1] = {};
        const bool ok = config_.trust != nullptr &&
                        verify_image_signature(port_, *config_.trust, record_.size, config_.image_keys, signature_block_,
                                               reason, sizeof(reason));
        if (!ok) {
            if (config_.trust == nullptr) {
                snprintf(reason, sizeof(reason), "signed images required but this build has no signature check");
            }
            fail_update("signature-invalid", reason);
            return;
        }
        logf(LogLevel::info, "image signature verified (Secure Boot v2 block of a trusted key)");
    }
    report(UpdateState::downloaded, -1, nullptr, nullptr, nullptr);

    transfer_open_ = false;  // esp_https_ota_finish closes the transfer whatever it returns
    if (!port_.transfer_finish_and_set_boot()) {
        fail_update("invalid-image", "image failed validation or the boot slot could not be set");
        return;
    }
    // Order matters for power loss: the boot slot is switched first, then the record says so.
    // A reset in between boots the new image with the record still `downloading`, which
    // evaluate_boot() recognises by the running version.
    record_.phase = RecordPhase::flashed;
    save_record();
    report(UpdateState::rebooting, -1, nullptr, nullptr, nullptr);
    port_.flush_publications(config_.reboot_flush_timeout_ms);
    logf(LogLevel::info, "update %s written to %s; rebooting into %s", record_.update_id, record_.target_slot,
         record_.target_version);
    state_ = AgentState::rebooting;
    port_.reboot();
}

void UpdateAgent::transfer_interrupted(const char* why) {
    if (transfer_open_) {
        port_.transfer_abort();
        transfer_open_ = false;
    }
    if (record_.attempts < 0xff) {
        ++record_.attempts;
    }
    record_.offset = bytes_in_slot_;
    save_record();
    saved_offset_ = record_.offset;
    if (record_.attempts >= config_.download_attempts) {
        char reason[kReasonMax + 1];
        snprintf(reason, sizeof(reason), "gave up after %u attempts: %s", static_cast<unsigned>(record_.attempts), why);
        fail_update("download-failed", reason);
        return;
    }
    const unsigned shift = record_.attempts - 1 < 16 ? record_.attempts - 1 : 16;
    uint64_t backoff = static_cast<uint64_t>(config_.retry_backoff_ms) << shift;
    if (backoff > config_.retry_backoff_max_ms) {
        backoff = config_.retry_backoff_max_ms;
    }
    retry_at_ms_ = port_.now_ms() + backoff;
    state_ = AgentState::retry_wait;
    logf(LogLevel::warn, "download interrupted at %u of %u bytes (%s); attempt %u of %u, retrying in %u ms",
         static_cast<unsigned>(bytes_in_slot_), static_cast<unsigned>(record_.size), why,
         static_cast<unsigned>(record_.attempts), static_cast<unsigned>(config_.download_attempts),
         static_cast<unsigned>(backoff));
}

void UpdateAgent::report_progress(uint32_t bytes, bool force) {
    if (record_.size == 0) {
        return;
    }
    const int percent = static_cast<int>(static_cast<uint64_t>(bytes) * 100 / record_.size);
    const int step = config_.progress_step_percent > 0 ? config_.progress_step_percent : 1;
    if (!force && last_progress_ >= 0 && percent / step <= last_progress_ / step) {
        return;
    }
    last_progress_ = percent;
    logf(LogLevel::info, "downloading update %s: %d%% (%u of %u bytes)", record_.update_id, percent,
         static_cast<unsigned>(bytes), static_cast<unsigned>(record_.size));
    report(UpdateState::downloading, percent, nullptr, nullptr, nullptr);
}

// ---------------------------------------------------------------------------------------------
// Outcomes and persistence

void UpdateAgent::fail_update(const char* error, const char* reason) {
    if (transfer_open_) {
        port_.transfer_abort();
        transfer_open_ = false;
    }
    logf(LogLevel::error, "update %s failed: %s (%s)", record_.update_id, error, reason);
    finish_record(UpdateState::failed, error, reason);
    state_ = AgentState::idle;
    publish_final_if_pending();
}

void UpdateAgent::finish_record(UpdateState state, const char* error, const char* reason) {
    record_.phase = RecordPhase::finished;
    record_.final_state = state;
    record_.final_reported = false;
    copy_text(record_.error, error);
    copy_text(record_.reason, reason);
    save_record();
}

void UpdateAgent::report(UpdateState state, int progress, const char* version, const char* error,
                         const char* reason) {
    if (!connected_) {
        // Progress is only useful live; final states are kept in the record and sent on the
        // next connection by publish_final_if_pending().
        logf(LogLevel::debug, "offline: status %s of update %s not sent", to_string(state), record_.update_id);
        return;
    }
    const StatusReport r{record_.update_id, state, progress, version, error, reason};
    const size_t len = encode_status(r, message_, sizeof(message_));
    if (len == 0 || !port_.publish(topics_.status(), message_, len)) {
        logf(LogLevel::warn, "status %s of update %s not sent", to_string(state), record_.update_id);
    }
}

// The application's say before anything is stored: a deferred update leaves the agent idle and the
// record as it was, and the server offers the same update again after retry_after_s.
bool UpdateAgent::application_defers(const Command& command) {
    uint32_t retry_after_s = 0;
    char reason[kReasonMax + 1] = {};
    if (!port_.application_defers_update(command.target.version, command.target.size, &retry_after_s, reason, sizeof(reason))) {
        return false;
    }
    reason[kReasonMax] = '\0';
    if (retry_after_s < 1) retry_after_s = 1;
    if (retry_after_s > kRetryAfterMaxS) retry_after_s = kRetryAfterMaxS;
    logf(LogLevel::info, "update %s deferred by the application for %u s%s%s", command.update_id,
         static_cast<unsigned>(retry_after_s), reason[0] ? ": " : "", reason);
    if (!connected_) {
        return true;  // the server offers it again on the next announce
    }
    StatusReport r{command.update_id, UpdateState::deferred, -1, nullptr, nullptr, reason[0] ? reason : nullptr};
    r.retry_after_s = retry_after_s;
    const size_t len = encode_status(r, message_, sizeof(message_));
    if (len == 0 || !port_.publish(topics_.status(), message_, len)) {
        logf(LogLevel::warn, "status deferred of update %s not sent", command.update_id);
    }
    return true;
}

void UpdateAgent::report_for(const char* update_id, UpdateState state, const char* error, const char* reason) {
    if (!connected_) {
        return;
    }
    // `succeeded` carries the version now running (docs/protocol.md "status").
    const char* version = state == UpdateState::succeeded ? running_.image.app.version : nullptr;
    const StatusReport r{update_id, state, -1, version, error, reason};
    const size_t len = encode_status(r, message_, sizeof(message_));
    if (len == 0 || !port_.publish(topics_.status(), message_, len)) {
        logf(LogLevel::warn, "status %s of update %s not sent", to_string(state), update_id);
        return;
    }
    logf(LogLevel::info, "reported update %s %s%s%s", update_id, to_string(state), error != nullptr && error[0] != '\0' ? ": " : "",
         error != nullptr ? error : "");
}

bool UpdateAgent::save_record() {
    uint8_t buf[kUpdateRecordMaxBytes];
    const size_t len = encode_update_record(record_, buf, sizeof(buf));
    if (len == 0 || !port_.kv_write(kUpdateRecordKey, buf, len)) {
        logf(LogLevel::error, "could not save the update record");
        return false;
    }
    return true;
}

void UpdateAgent::load_record() {
    uint8_t buf[kUpdateRecordMaxBytes];
    size_t len = 0;
    record_ = UpdateRecord{};
    if (!port_.kv_read(kUpdateRecordKey, buf, sizeof(buf), &len)) {
        return;
    }
    if (!decode_update_record(buf, len, &record_)) {
        record_ = UpdateRecord{};
        logf(LogLevel::warn, "stored update record is unreadable; starting without it");
    }
}

void UpdateAgent::logf(LogLevel level, const char* format, ...) {
    char line[256];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof(line), format, args);
    va_end(args);
    port_.log(level, line);
}

}  // namespace mqota
