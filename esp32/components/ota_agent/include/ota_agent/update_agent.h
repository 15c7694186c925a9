// The device's update state machine (docs/protocol.md "Device lifecycle"), platform-independent.
//
//            start()
//               |
//   pending-verify image? --yes--> verifying_image --broker reached, check ok--> idle
//               | no                     | timeout or check failed: mark invalid, reboot
//               v                        v
//             idle <-----------------------------------------------------------+
//               | update command (valid, newer, fits; the application may defer it: stays idle)
//               v                                                              |
//            accepted --cancel--> idle                                         |
//               | service(): open HTTPS, check image header                    |
//               v                                                              |
//          downloading <---back-off elapsed--- retry_wait                      |
//               |  \---interrupted (tries left)------^    \--tries used up-----+ failed
//               | complete, size and sha256 match                              |
//               v                                                              |
//   set boot slot, record `flashed`, report `rebooting` --> rebooting (reboot) |
//               | sha256 mismatch, bad header, invalid image ------------------+ failed
//
// A port feeds it events from a single task: on_connected/on_subscribed/on_disconnected/
// on_message, and calls service() whenever the returned delay has passed or an event arrived.
// Each service() call does one bounded step (one chunk of the download), so commands received
// during a download are handled between chunks.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ota_agent/boot_result.h"
#include "ota_agent/platform.h"
#include "ota_agent/protocol.h"
#include "ota_agent/trust.h"
#include "ota_agent/update_record.h"

namespace mqota {

struct SemVer;

struct AgentConfig {
    const char* device_id = nullptr;
    // Firmware type announced and required of updates. nullptr: the running image's project
    // name (esp_app_desc_t::project_name), which is what the server reads from uploaded images.
    const char* device_type = nullptr;
    // A new image must reach the broker within this time after boot, or it is rolled back.
    uint32_t self_test_timeout_ms = 60000;
    // Download attempts (first try included) before reporting `failed`.
    uint8_t download_attempts = 5;
    uint32_t retry_backoff_ms = 2000;       // doubled after each failed attempt ...
    uint32_t retry_backoff_max_ms = 60000;  // ... up to this
    uint8_t progress_step_percent = 10;     // `downloading` reports at most every this many %
    uint32_t offset_save_bytes = 64 * 1024; // resume point saved to NVS at least this often
    uint32_t reboot_flush_timeout_ms = 3000;  // wait for PUBACKs before rebooting

    // docs/security.md. The port's cryptography and clock; needed by the two checks below
    // (without it they refuse everything rather than pass it).
    TrustPort* trust = nullptr;
    // Act only on update commands signed with the command key the device was provisioned with.
    bool require_signed_commands = false;
    // Install only images carrying a Secure Boot v2 signature by one of these keys (count 0: no
    // check here; on ESP-IDF, CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT makes esp_ota_end check).
    TrustedKeyDigests image_keys;
};

enum class AgentState : uint8_t {
    booting,          // before start()
    verifying_image,  // first boot of a new image, self-test running
    idle,
    accepted,         // update accepted, download not started: cancel drops it
    downloading,
    retry_wait,       // download interrupted, waiting out the back-off
    rebooting,        // reboot requested
    halted,           // start() failed (no running image description); does nothing
};

const char* to_string(AgentState state);

class UpdateAgent {
public:
    static constexpr uint32_t kNoDeadline = 0xFFFFFFFFu;

    UpdateAgent(DevicePort& port, const AgentConfig& config);
    UpdateAgent(const UpdateAgent&) = delete;
    UpdateAgent& operator=(const UpdateAgent&) = delete;

    // Reads the running image and the stored record and decides what this boot means.
    // False on a fatal configuration error (invalid device id, no running image description).
    bool start();

    void on_connected(bool session_present);
    void on_subscribed(bool granted);
    void on_disconnected();
    void on_message(const char* topic, const char* payload, size_t len);

    // Does the next step of pending work. Returns the delay in ms after which service() should
    // be called again if no event arrives first: 0 = immediately, kNoDeadline = only on events.
    uint32_t service();

    // Orderly stop (SIGTERM on Linux): closes a running download and saves how far it got, so
    // the next start can resume it.
    void shutdown();

    AgentState state() const { return state_; }
    BootOutcome boot_outcome() const { return boot_.outcome; }
    const char* device_type() const { return type_; }
    const RunningImage& running_image() const { return running_; }
    const UpdateRecord& record() const { return record_; }

private:
    // Connection flow
    void after_subscribed();
    void announce();
    void publish_final_if_pending();

    // Boot and self-test
    void finish_self_test(bool passed, const char* why);

    // Commands
    void handle_update(const Command& command);
    void handle_cancel(const Command& command);
    bool validate_command(const UpdateTarget& target, const char** error, char* reason, size_t cap);
    // The version rules both gates share: newer than the running image, not one rolled back here.
    // `what` names the version in the reason ("version" for the command, "image version" for the header).
    bool version_is_acceptable(const char* what, const char* version, const SemVer& parsed, const char** error,
                               char* reason, size_t cap);
    bool is_current_update(const char* update_id) const;
    bool command_is_trusted(const Command& command);

    // Download
    void open_transfer();
    void step_transfer();
    void complete_transfer();
    bool validate_image(const ImageDescription& image, const char** error, char* reason, size_t cap);
    void transfer_interrupted(const char* why);
    void report_progress(uint32_t bytes, bool force);

    // Outcomes and persistence
    void fail_update(const char* error, const char* reason);
    void finish_record(UpdateState state, const char* error, const char* reason);
    void report(UpdateState state, int progress, const char* version, const char* error,
                const char* reason);
    void report_for(const char* update_id, UpdateState state, const char* error, const char* reason);
    bool application_defers(const Command& command);
    bool save_record();
    void load_record();

    void logf(LogLevel level, const char* format, ...) __attribute__((format(printf, 3, 4)));

    DevicePort& port_;
    AgentConfig config_;
    Topics topics_;
    char type_[kTypeMax + 1] = {};
    RunningImage running_{};
    UpdateRecord record_{};
    BootResult boot_{BootOutcome::normal, false};
    AgentState state_ = AgentState::booting;

    bool connected_ = false;
    bool awaiting_suback_ = false;
    bool transfer_open_ = false;
    bool download_started_ = false;  // transfer_open succeeded once for the current update
    uint64_t self_test_deadline_ms_ = 0;
    uint64_t retry_at_ms_ = 0;
    int last_progress_ = -1;
    uint32_t saved_offset_ = 0;    // record_.offset as last saved
    uint32_t bytes_in_slot_ = 0;   // image bytes in the passive slot, as the port last said

    Command command_{};  // decoded in place; too large for a small task stack
    // The command named the image's own version string: the image is checked against it exactly
    // and need not be semver (an Arduino build's "heads/idf-release/v4.4-0-gd4572").
    bool exact_image_version_ = false;
    uint8_t signature_block_[kSignatureBlockBytes] = {};  // scratch for verify_image_signature
    // Encoded status or announce. Worst case: every bounded field made of characters that cJSON
    // escapes as \u00XX (6 bytes each), e.g. a version string read from a hostile image header.
    char message_[6 * (kUpdateIdMax + kVersionMax + kErrorCodeMax + kReasonMax) + 128] = {};
};

}  // namespace mqota
