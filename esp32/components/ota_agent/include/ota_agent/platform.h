// The one interface between the portable core and a platform. port/esp_idf implements it with
// esp-mqtt, esp_https_ota, esp_ota_ops and NVS; port/linux with libmosquitto, libcurl and files
// that behave like the two OTA slots and otadata; the unit tests with an in-memory double.
//
// Threading: the core is single-threaded. A port calls UpdateAgent from one task only and turns
// MQTT callbacks into queued events for that task; DevicePort methods are called from that task.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ota_agent/image_format.h"
#include "ota_agent/limits.h"

namespace mqota {

enum class LogLevel : uint8_t { error, warn, info, debug };

// esp_ota_img_states_t of the running slot (ESP-IDF bootloader_support/esp_flash_partitions.h).
enum class SlotState : uint8_t {
    undefined,       // ESP_OTA_IMG_UNDEFINED, or no otadata entry (factory-flashed image)
    new_image,       // ESP_OTA_IMG_NEW: set boot, never booted
    pending_verify,  // ESP_OTA_IMG_PENDING_VERIFY: first boot, must confirm or roll back
    valid,           // ESP_OTA_IMG_VALID
    invalid,         // ESP_OTA_IMG_INVALID
    aborted,         // ESP_OTA_IMG_ABORTED
};

const char* to_string(SlotState state);

struct RunningImage {
    ImageDescription image;
    char chip[kChipNameMax + 1];           // announce "chip"
    char slot[kSlotLabelMax + 1];          // running partition label, "ota_0"
    SlotState state;
    char passive_slot[kSlotLabelMax + 1];  // where an update is written
    uint32_t passive_slot_size;            // bytes
};

// What a device says of its condition in each announce (docs/protocol.md#health). A port fills
// what it can and sets each has_* flag; reset_reason is one of the names of docs/protocol.md
// (esp_reset_reason_t: "poweron", "software", "panic", "task_wdt", ...) or nullptr.
struct DeviceHealth {
    bool has_rssi;
    int8_t rssi;                   // dBm of the access point
    bool has_heap;
    uint32_t free_heap;            // bytes
    uint32_t min_free_heap;        // bytes, least since boot
    bool has_uptime;
    uint32_t uptime_s;
    const char* reset_reason;      // static string, or nullptr
    bool has_partition_size;
    uint32_t partition_size;       // bytes of the running partition
    bool has_elf_sha256;
    uint8_t elf_sha256[kSha256Bytes];
};

struct TransferRequest {
    const char* url;
    uint32_t expected_size;
    // Continue at this offset (HTTP Range: bytes=<offset>-) when > 0. The port may lower it
    // (alignment) and reports what it used in TransferStart::offset.
    uint32_t resume_offset;
    const char* resume_etag;  // strong ETag the saved bytes came from, sent as If-Range
};

struct TransferStart {
    int http_status;             // 200, or 206 for a range response
    uint32_t offset;             // image bytes already in the slot; writing continues here
    char etag[kEtagMax + 1];     // ETag of this response, "" if none
    ImageDescription image;      // header of the image (from the stream, or the slot on resume)
};

enum class TransferStatus : uint8_t {
    ok,               // transfer_open: connected, header read, nothing written yet
    in_progress,      // transfer_step: more to come
    complete,         // transfer_step: the server sent the whole body
    transient_error,  // network, TLS, 5xx, short read: worth a retry
    permanent_error,  // 4xx, image not acceptable to the platform: retrying cannot help
};

const char* to_string(TransferStatus status);

class DevicePort {
public:
    // ---- time and log ----
    virtual uint64_t now_ms() = 0;  // monotonic
    virtual void log(LogLevel level, const char* message) = 0;

    // ---- MQTT 3.1.1, QoS 1, never retained ----
    virtual bool subscribe(const char* topic) = 0;
    // Queues the message (also while disconnected); true if the client accepted it.
    virtual bool publish(const char* topic, const char* payload, size_t len) = 0;
    // Waits until every queued QoS 1 publication is acknowledged, at most timeout_ms.
    virtual bool flush_publications(uint32_t timeout_ms) = 0;

    // ---- running image and boot control (esp_ota_ops) ----
    virtual bool describe_running_image(RunningImage* out) = 0;
    // Image in the slot esp_ota_get_last_invalid_partition() names; false if none.
    virtual bool describe_last_invalid_image(ImageDescription* out) = 0;
    // Anti-rollback secure version burnt in eFuse (0 if never burnt).
    virtual uint32_t hardware_secure_version() = 0;
    // Health for the announce; false (the default) sends none.
    virtual bool read_health(DeviceHealth* out) {
        (void)out;
        return false;
    }
    // Application-specific check of a freshly booted image (sensors, peripherals); true = fine.
    virtual bool application_self_test() = 0;
    // Asked before an update is accepted (docs/protocol.md "Deferral"): the application may put
    // it off (busy, battery low) by returning true with *retry_after_s (1..kRetryAfterMaxS) and,
    // optionally, a reason in reason[0..cap); the server offers it again after that. A port
    // without an application callback never defers.
    virtual bool application_defers_update(const char* version, uint32_t size, uint32_t* retry_after_s, char* reason,
                                           size_t cap) {
        (void)version, (void)size, (void)retry_after_s, (void)reason, (void)cap;
        return false;
    }
    // esp_ota_mark_app_valid_cancel_rollback().
    virtual bool confirm_running_image() = 0;
    // esp_ota_mark_app_invalid_rollback_and_reboot(). On a device it returns only when the
    // rollback is impossible (no other valid image), with false. A test double returns true to
    // say "rebooted"; the agent then stays in AgentState::rebooting.
    virtual bool reject_running_image_and_reboot() = 0;
    // esp_restart(). Does not return on a device; a test double may return, after which the
    // agent stays in AgentState::rebooting.
    virtual void reboot() = 0;

    // ---- image transfer into the passive slot (esp_https_ota) ----
    // Opens an HTTPS GET of req.url (server verified with the mqota CA, never skipped) and reads
    // the image header without writing it. On ok, transfer_step or transfer_abort must follow.
    virtual TransferStatus transfer_open(const TransferRequest& req, TransferStart* start) = 0;
    // Reads one chunk and writes it to the slot. *bytes_in_slot = image bytes now in the slot,
    // set on errors too (it is where a resume continues).
    virtual TransferStatus transfer_step(uint32_t* bytes_in_slot) = 0;
    // Closes the connection; bytes already written stay in the slot for a later resume.
    virtual void transfer_abort() = 0;
    // SHA-256 of the first `length` bytes of the passive slot, read back from flash.
    virtual bool slot_sha256(uint32_t length, uint8_t digest[kSha256Bytes]) = 0;
    // Reads len bytes at offset of the passive slot (a signature block, docs/security.md).
    virtual bool slot_read(uint32_t offset, void* buf, size_t len) = 0;
    // After `complete`: validates the image and makes the passive slot the boot slot
    // (esp_https_ota_finish). The transfer is closed whatever the result.
    virtual bool transfer_finish_and_set_boot() = 0;

    // ---- persistent key-value store (NVS) ----
    // False if the key is absent or does not fit in cap.
    virtual bool kv_read(const char* key, void* buf, size_t cap, size_t* len) = 0;
    virtual bool kv_write(const char* key, const void* data, size_t len) = 0;
    virtual bool kv_erase(const char* key) = 0;

protected:
    ~DevicePort() = default;
};

}  // namespace mqota
