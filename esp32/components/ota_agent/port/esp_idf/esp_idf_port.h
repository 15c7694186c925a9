// DevicePort on ESP-IDF v5.x: esp_https_ota (advanced API) for the download into the passive
// slot, esp_ota_ops for boot control and rollback, NVS for the update record.
#pragma once

#include "device_identity.h"
#include "esp_https_ota.h"
#include "mqtt_link.h"
#include "nvs.h"
#include "ota_agent.h"
#include "ota_agent/platform.h"

namespace mqota::esp_idf {

class EspIdfPort final : public DevicePort {
public:
    EspIdfPort(MqttLink& link, const DeviceIdentity& identity, ota_agent_self_test_t self_test, void* self_test_ctx,
               ota_agent_defer_t defer, void* defer_ctx);
    ~EspIdfPort();
    EspIdfPort(const EspIdfPort&) = delete;
    EspIdfPort& operator=(const EspIdfPort&) = delete;
    esp_err_t open_store();

    uint64_t now_ms() override;
    void log(LogLevel level, const char* message) override;

    bool subscribe(const char* topic) override { return link_.subscribe(topic); }
    bool publish(const char* topic, const char* payload, size_t len) override { return link_.publish(topic, payload, len); }
    bool flush_publications(uint32_t timeout_ms) override { return link_.flush(timeout_ms); }

    bool describe_running_image(RunningImage* out) override;
    bool describe_last_invalid_image(ImageDescription* out) override;
    uint32_t hardware_secure_version() override;
    bool application_self_test() override;
    bool application_defers_update(const char* version, uint32_t size, uint32_t* retry_after_s, char* reason, size_t cap) override {
        return defer_ != nullptr && defer_(version, size, retry_after_s, reason, cap, defer_ctx_);
    }
    bool read_health(DeviceHealth* out) override;
    bool confirm_running_image() override;
    bool reject_running_image_and_reboot() override;
    void reboot() override;

    TransferStatus transfer_open(const TransferRequest& req, TransferStart* start) override;
    TransferStatus transfer_step(uint32_t* bytes_in_slot) override;
    void transfer_abort() override;
    bool slot_sha256(uint32_t length, uint8_t digest[kSha256Bytes]) override;
    bool slot_read(uint32_t offset, void* buf, size_t len) override;
    bool transfer_finish_and_set_boot() override;

    bool kv_read(const char* key, void* buf, size_t cap, size_t* len) override;
    bool kv_write(const char* key, const void* data, size_t len) override;
    bool kv_erase(const char* key) override;

private:
    esp_err_t begin_https_ota(const char* url, uint32_t offset, const char* if_range);
    static esp_err_t on_http_event(esp_http_client_event_t* event);
    static esp_err_t on_http_client_init(esp_http_client_handle_t client);

    MqttLink& link_;
    const DeviceIdentity& identity_;
    ota_agent_self_test_t self_test_;
    void* self_test_ctx_;
    ota_agent_defer_t defer_;
    void* defer_ctx_;
    nvs_handle_t store_ = 0;

    // Current transfer. esp_https_ota keeps a pointer to http_config_ while the handle lives.
    esp_http_client_config_t http_config_ = {};
    esp_https_ota_handle_t ota_ = nullptr;
    const char* if_range_ = nullptr;
    int http_status_ = 0;
    char etag_[kEtagMax + 1] = {};
    uint32_t bytes_in_slot_ = 0;
};

}  // namespace mqota::esp_idf
