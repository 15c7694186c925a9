// DevicePort for a Linux host: the whole update path of the chip, on files and sockets.
#pragma once

#include <functional>

#include "curl_transfer.h"
#include "file_kv_store.h"
#include "flash_slots.h"
#include "mosquitto_link.h"
#include "ota_agent/platform.h"

namespace mqota::linux_port {

// Host-only simulation hook: an image containing these bytes fails its application self-test,
// so a test can produce a rollback with an image that boots but is "broken".
constexpr const char* kSelfTestFailMarker = "MQOTA_SELFTEST_FAIL";

// The application's answer to an update offer (docs/protocol.md "Deferral"): true defers it for
// *retry_after_s seconds, with an optional reason. What the ESP-IDF port's ota_agent_defer_t is.
using DeferralCallback = std::function<bool(const char* version, uint32_t size, uint32_t* retry_after_s, char* reason, size_t cap)>;

class LinuxPort final : public DevicePort {
public:
    LinuxPort(FlashSlots& slots, FileKvStore& kv, MosquittoLink& link, CurlTransfer& transfer,
              uint32_t efuse_secure_version, std::function<void()> reboot, const char* reset_reason = "poweron");

    uint64_t now_ms() override;
    void log(LogLevel level, const char* message) override;

    bool subscribe(const char* topic) override { return link_.subscribe(topic); }
    bool publish(const char* topic, const char* payload, size_t len) override { return link_.publish(topic, payload, len); }
    bool flush_publications(uint32_t timeout_ms) override { return link_.flush(timeout_ms); }

    bool describe_running_image(RunningImage* out) override;
    bool describe_last_invalid_image(ImageDescription* out) override;
    uint32_t hardware_secure_version() override { return efuse_secure_version_; }
    bool application_self_test() override;
    bool application_defers_update(const char* version, uint32_t size, uint32_t* retry_after_s, char* reason, size_t cap) override {
        return defer_ && defer_(version, size, retry_after_s, reason, cap);
    }
    void set_deferral(DeferralCallback defer) { defer_ = std::move(defer); }
    // Uptime of this run, the slot size, why it started, the SHA-256 of this program's ELF
    // (/proc/self/exe). No Wi-Fi and no heap figure comparable to the chip's: those are left out.
    bool read_health(DeviceHealth* out) override;
    bool confirm_running_image() override { return slots_.mark_running_valid(); }
    bool reject_running_image_and_reboot() override;
    void reboot() override { reboot_(); }

    TransferStatus transfer_open(const TransferRequest& req, TransferStart* start) override {
        return transfer_.open(req, start);
    }
    TransferStatus transfer_step(uint32_t* bytes_in_slot) override { return transfer_.step(bytes_in_slot); }
    void transfer_abort() override { transfer_.abort(); }
    bool slot_sha256(uint32_t length, uint8_t digest[kSha256Bytes]) override { return slots_.sha256(length, digest); }
    bool slot_read(uint32_t offset, void* buf, size_t len) override { return slots_.read(offset, buf, len); }
    bool transfer_finish_and_set_boot() override;

    bool kv_read(const char* key, void* buf, size_t cap, size_t* len) override { return kv_.read(key, buf, cap, len); }
    bool kv_write(const char* key, const void* data, size_t len) override;
    bool kv_erase(const char* key) override;

private:
    FlashSlots& slots_;
    FileKvStore& kv_;
    MosquittoLink& link_;
    CurlTransfer& transfer_;
    uint32_t efuse_secure_version_;
    std::function<void()> reboot_;
    DeferralCallback defer_;
    const char* reset_reason_;
    uint64_t started_ms_;
    bool elf_hashed_ = false;
    bool has_elf_sha256_ = false;
    uint8_t elf_sha256_[kSha256Bytes] = {};
};

}  // namespace mqota::linux_port
