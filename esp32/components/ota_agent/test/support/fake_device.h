// An in-memory device for the agent tests: two slots and an otadata with the bootloader rules of
// the Linux port (otadata.h), a key-value store that survives "reboots", a manual clock, a record
// of everything published, and a scriptable HTTPS image server.
#pragma once

#include <stdio.h>

#include <stdint.h>

#include <map>
#include <string>
#include <vector>

#include "ota_agent/platform.h"
#include "otadata.h"

namespace mqota::test {

struct Publication {
    std::string topic;
    std::string payload;
};

// What the image server does for one URL.
struct ServedImage {
    std::vector<uint8_t> body;
    std::string etag;              // sent with every response; "" for none
    bool honours_range = true;     // false: answers Range with 200 and the whole body
    bool honours_if_range = true;  // false: answers 206 even when If-Range does not match
    int status = 200;              // e.g. 404 or 503 to fail the request
    // Per request (0-based): stop the body after this many bytes of the response.
    std::map<int, uint32_t> drop_after;
};

class FakeDevice final : public DevicePort {
public:
    static constexpr uint32_t kSlotSize = 0x180000;
    static constexpr size_t kChunk = 16 * 1024;

    FakeDevice();

    // Factory flash + bootloader.
    void install(const std::vector<uint8_t>& image);
    int boot();  // runs the bootloader; returns the running slot or -1

    // ---- DevicePort
    uint64_t now_ms() override { return now_; }
    void log(LogLevel level, const char* message) override;
    bool subscribe(const char* topic) override;
    bool publish(const char* topic, const char* payload, size_t len) override;
    bool flush_publications(uint32_t) override { return flush_ok; }
    bool describe_running_image(RunningImage* out) override;
    bool describe_last_invalid_image(ImageDescription* out) override;
    uint32_t hardware_secure_version() override { return efuse_secure_version; }
    bool application_self_test() override { return app_self_test_ok; }
    bool application_defers_update(const char* version, uint32_t, uint32_t* retry_after_s, char* reason, size_t cap) override {
        if (defer_offers == 0) return false;
        --defer_offers;
        deferred_versions.emplace_back(version);
        *retry_after_s = defer_retry_after_s;
        if (!defer_reason.empty()) snprintf(reason, cap, "%s", defer_reason.c_str());
        return true;
    }
    bool confirm_running_image() override;
    bool reject_running_image_and_reboot() override;
    void reboot() override { ++reboots; }
    TransferStatus transfer_open(const TransferRequest& req, TransferStart* start) override;
    TransferStatus transfer_step(uint32_t* bytes_in_slot) override;
    void transfer_abort() override { transfer_active_ = false; }
    bool slot_sha256(uint32_t length, uint8_t digest[32]) override;
    bool slot_read(uint32_t offset, void* buf, size_t len) override;
    bool transfer_finish_and_set_boot() override;
    bool kv_read(const char* key, void* buf, size_t cap, size_t* len) override;
    bool kv_write(const char* key, const void* data, size_t len) override;
    bool kv_erase(const char* key) override;

    // ---- test controls and observations
    void advance(uint64_t ms) { now_ += ms; }
    int running_slot() const { return running_; }
    int passive_slot() const { return 1 - running_; }
    SlotState slot_state(int slot) const;
    const std::vector<uint8_t>& slot(int i) const { return slots_[i]; }
    std::vector<std::string> statuses() const;     // "accepted", "downloading:40", ...
    std::vector<Publication> published_on(const std::string& suffix) const;
    void clear_published() { published.clear(); }
    int requests_for(const std::string& url) const;

    std::map<std::string, ServedImage> server;
    std::vector<Publication> published;
    std::vector<std::string> subscriptions;
    std::vector<std::string> logs;
    // The application defers this many offers, asking for retry_after seconds (0 means "say 0").
    int defer_offers = 0;
    uint32_t defer_retry_after_s = 30;
    std::string defer_reason;
    std::vector<std::string> deferred_versions;
    std::vector<std::string> range_requests;  // "bytes=N- If-Range:etag" per resumed request
    int reboots = 0;
    bool flush_ok = true;
    bool app_self_test_ok = true;
    bool fail_kv_writes = false;
    uint32_t efuse_secure_version = 0;
    uint16_t chip_id = 0x0000;
    bool verbose = false;

private:
    bool image_valid(int slot) const;

    std::vector<uint8_t> slots_[2];
    linux_port::OtaData otadata_;
    std::map<std::string, std::vector<uint8_t>> kv_;
    uint64_t now_ = 1000;
    int running_ = -1;

    // Current transfer.
    bool transfer_active_ = false;
    const ServedImage* serving_ = nullptr;
    uint32_t body_pos_ = 0;        // position in the image of the next byte to send
    uint32_t sent_ = 0;            // bytes of this response sent
    uint32_t drop_at_ = UINT32_MAX;
    std::map<std::string, int> request_count_;
};

}  // namespace mqota::test
