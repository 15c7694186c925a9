#include "esp_idf_port.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "esp_app_desc.h"
#include "esp_efuse.h"
#include "esp_flash_encrypt.h"
#include "esp_idf_version.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "esp_wifi.h"
#include "mbedtls/sha256.h"
#include "sdkconfig.h"

namespace mqota::esp_idf {
namespace {

constexpr const char* TAG = "ota_agent";
constexpr const char* kStoreNamespace = "mqota_state";  // the agent's own; "mqota" is provisioning
constexpr int kHttpTimeoutMs = 15000;
constexpr int kHttpBufferBytes = 4096;

template <size_t N>
void copy_field(char (&out)[N], const char* in, size_t in_size) {
    const size_t n = strnlen(in, in_size) < N - 1 ? strnlen(in, in_size) : N - 1;
    memcpy(out, in, n);
    out[n] = '\0';
}

void to_description(const esp_app_desc_t& d, ImageDescription* out) {
    *out = ImageDescription{};
    // esp_https_ota_perform() checks the image's chip id against CONFIG_IDF_FIRMWARE_CHIP_ID
    // itself (ESP_ERR_INVALID_VERSION); an image that gets this far is for this chip.
    out->chip_id = CONFIG_IDF_FIRMWARE_CHIP_ID;
    out->app.secure_version = d.secure_version;
    copy_field(out->app.version, d.version, sizeof(d.version));
    copy_field(out->app.project_name, d.project_name, sizeof(d.project_name));
    copy_field(out->app.time, d.time, sizeof(d.time));
    copy_field(out->app.date, d.date, sizeof(d.date));
    copy_field(out->app.idf_ver, d.idf_ver, sizeof(d.idf_ver));
}

SlotState to_slot_state(esp_ota_img_states_t s) {
    switch (s) {
        case ESP_OTA_IMG_NEW: return SlotState::new_image;
        case ESP_OTA_IMG_PENDING_VERIFY: return SlotState::pending_verify;
        case ESP_OTA_IMG_VALID: return SlotState::valid;
        case ESP_OTA_IMG_INVALID: return SlotState::invalid;
        case ESP_OTA_IMG_ABORTED: return SlotState::aborted;
        case ESP_OTA_IMG_UNDEFINED: return SlotState::undefined;
    }
    return SlotState::undefined;
}

bool client_error(int status) { return status >= 400 && status < 500 && status != 408 && status != 429; }

}  // namespace

EspIdfPort::EspIdfPort(MqttLink& link, const DeviceIdentity& identity, ota_agent_self_test_t self_test, void* self_test_ctx,
                       ota_agent_defer_t defer, void* defer_ctx)
    : link_(link), identity_(identity), self_test_(self_test), self_test_ctx_(self_test_ctx), defer_(defer), defer_ctx_(defer_ctx) {}

EspIdfPort::~EspIdfPort() {
    transfer_abort();
    if (store_ != 0) {
        nvs_close(store_);
    }
}

esp_err_t EspIdfPort::open_store() { return nvs_open(kStoreNamespace, NVS_READWRITE, &store_); }

uint64_t EspIdfPort::now_ms() { return static_cast<uint64_t>(esp_timer_get_time() / 1000); }

void EspIdfPort::log(LogLevel level, const char* message) {
    switch (level) {
        case LogLevel::error: ESP_LOGE(TAG, "%s", message); break;
        case LogLevel::warn: ESP_LOGW(TAG, "%s", message); break;
        case LogLevel::info: ESP_LOGI(TAG, "%s", message); break;
        case LogLevel::debug: ESP_LOGD(TAG, "%s", message); break;
    }
}

// ---- running image and boot control

bool EspIdfPort::describe_running_image(RunningImage* out) {
    const esp_partition_t* running = esp_ota_get_running_partition();
    const esp_partition_t* passive = esp_ota_get_next_update_partition(nullptr);
    if (running == nullptr) {
        return false;
    }
    *out = RunningImage{};
    to_description(*esp_app_get_description(), &out->image);
    snprintf(out->chip, sizeof(out->chip), "%s", CONFIG_IDF_TARGET);
    snprintf(out->slot, sizeof(out->slot), "%s", running->label);
    esp_ota_img_states_t state;
    // ESP_ERR_NOT_FOUND for an image flashed over USB (otadata blank): boots like a valid one.
    out->state = esp_ota_get_state_partition(running, &state) == ESP_OK ? to_slot_state(state) : SlotState::undefined;
    if (passive != nullptr) {
        snprintf(out->passive_slot, sizeof(out->passive_slot), "%s", passive->label);
        out->passive_slot_size = passive->size;
    }
    return true;
}

bool EspIdfPort::describe_last_invalid_image(ImageDescription* out) {
    const esp_partition_t* invalid = esp_ota_get_last_invalid_partition();
    esp_app_desc_t desc;
    if (invalid == nullptr || esp_ota_get_partition_description(invalid, &desc) != ESP_OK) {
        return false;
    }
    to_description(desc, out);
    return true;
}

uint32_t EspIdfPort::hardware_secure_version() { return esp_efuse_read_secure_version(); }

// esp_reset_reason_t (esp_system.h) by the names of docs/protocol.md#health.
static const char* reset_reason_name(esp_reset_reason_t reason) {
    switch (reason) {
        case ESP_RST_POWERON: return "poweron";
        case ESP_RST_EXT: return "external";
        case ESP_RST_SW: return "software";
        case ESP_RST_PANIC: return "panic";
        case ESP_RST_INT_WDT: return "int_wdt";
        case ESP_RST_TASK_WDT: return "task_wdt";
        case ESP_RST_WDT: return "wdt";
        case ESP_RST_DEEPSLEEP: return "deepsleep";
        case ESP_RST_BROWNOUT: return "brownout";
        case ESP_RST_SDIO: return "sdio";
        case ESP_RST_USB: return "usb";
        case ESP_RST_JTAG: return "jtag";
        case ESP_RST_EFUSE: return "efuse";
        case ESP_RST_PWR_GLITCH: return "pwr_glitch";
        case ESP_RST_CPU_LOCKUP: return "cpu_lockup";
        default: return "unknown";
    }
}

bool EspIdfPort::read_health(DeviceHealth* out) {
    *out = DeviceHealth{};
    wifi_ap_record_t ap;
    // ESP_ERR_WIFI_NOT_CONNECT (or Wi-Fi not started, on an Ethernet board): no RSSI to give.
    if (esp_wifi_sta_get_ap_info(&ap) == ESP_OK) {
        out->has_rssi = true;
        out->rssi = ap.rssi;
    }
    out->has_heap = true;
    out->free_heap = esp_get_free_heap_size();
    out->min_free_heap = esp_get_minimum_free_heap_size();
    out->has_uptime = true;
    out->uptime_s = static_cast<uint32_t>(esp_timer_get_time() / 1000000);
    out->reset_reason = reset_reason_name(esp_reset_reason());
    const esp_partition_t* running = esp_ota_get_running_partition();
    if (running != nullptr) {
        out->has_partition_size = true;
        out->partition_size = running->size;
    }
    // The ELF's SHA-256, written into the app descriptor at build time. Read from the descriptor:
    // esp_app_get_elf_sha256() gives only CONFIG_APP_RETRIEVE_LEN_ELF_SHA hex digits (9 by default).
    out->has_elf_sha256 = true;
    memcpy(out->elf_sha256, esp_app_get_description()->app_elf_sha256, kSha256Bytes);
    return true;
}

bool EspIdfPort::application_self_test() { return self_test_ == nullptr || self_test_(self_test_ctx_); }

bool EspIdfPort::confirm_running_image() {
    const esp_err_t err = esp_ota_mark_app_valid_cancel_rollback();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_mark_app_valid_cancel_rollback: %s", esp_err_to_name(err));
    }
    return err == ESP_OK;
}

bool EspIdfPort::reject_running_image_and_reboot() {
    // Marks the running slot ESP_OTA_IMG_INVALID and restarts; returns only on failure, e.g.
    // ESP_ERR_OTA_ROLLBACK_FAILED when no other slot holds a valid image.
    const esp_err_t err = esp_ota_mark_app_invalid_rollback_and_reboot();
    ESP_LOGE(TAG, "esp_ota_mark_app_invalid_rollback_and_reboot: %s", esp_err_to_name(err));
    return false;
}

void EspIdfPort::reboot() { esp_restart(); }

// ---- transfer (esp_https_ota advanced API, as in examples/system/ota/advanced_https_ota)

esp_err_t EspIdfPort::on_http_event(esp_http_client_event_t* event) {
    auto* self = static_cast<EspIdfPort*>(event->user_data);
    if (event->event_id == HTTP_EVENT_HEADERS_SENT) {
        self->etag_[0] = '\0';  // a new request (also the retry esp_https_ota makes without Range)
        self->http_status_ = 0;
    } else if (event->event_id == HTTP_EVENT_ON_HEADER) {
        self->http_status_ = esp_http_client_get_status_code(event->client);
        if (strcasecmp(event->header_key, "ETag") == 0) {
            snprintf(self->etag_, sizeof(self->etag_), "%s", strlen(event->header_value) <= kEtagMax ? event->header_value : "");
        }
    }
    return ESP_OK;
}

esp_err_t EspIdfPort::on_http_client_init(esp_http_client_handle_t client) {
    void* data = nullptr;
    esp_http_client_get_user_data(client, &data);
    auto* self = static_cast<EspIdfPort*>(data);
    if (self != nullptr && self->if_range_ != nullptr) {
        // RFC 9110 §13.1.5: if the image behind the URL changed, the server answers 200 and
        // esp_https_ota restarts from zero instead of splicing two images.
        return esp_http_client_set_header(client, "If-Range", self->if_range_);
    }
    return ESP_OK;
}

esp_err_t EspIdfPort::begin_https_ota(const char* url, uint32_t offset, const char* if_range) {
    http_config_ = {};
    http_config_.url = url;
    http_config_.cert_pem = identity_.ca_cert;  // server verification is never skipped
    http_config_.client_cert_pem = identity_.client_cert;  // offered if the server asks
    http_config_.client_key_pem = identity_.client_key;
    http_config_.timeout_ms = kHttpTimeoutMs;
    http_config_.keep_alive_enable = true;
    http_config_.buffer_size = kHttpBufferBytes;
    http_config_.event_handler = &EspIdfPort::on_http_event;
    http_config_.user_data = this;
#if CONFIG_ESP_TLS_CLIENT_SESSION_TICKETS
    http_config_.save_client_session = true;  // reused by the range requests of one transfer
#endif
    esp_https_ota_config_t ota_config = {};
    ota_config.http_config = &http_config_;
    ota_config.http_client_init_cb = &EspIdfPort::on_http_client_init;
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 5, 0)
    // Resumption across reboots: esp_https_ota sends "Range: bytes=<written>-" and continues
    // after the bytes already in the slot with esp_ota_resume().
    ota_config.ota_resumption = true;
    ota_config.ota_image_bytes_written = offset;
#else
    // Before v5.5 esp_https_ota cannot continue an earlier transfer (offset is always 0 here);
    // fetching the image in ranges at least keeps each request short.
    ota_config.partial_http_download = true;
    ota_config.max_http_request_size = 64 * 1024;
#endif
    if_range_ = offset > 0 ? if_range : nullptr;
    http_status_ = 0;
    etag_[0] = '\0';
    const esp_err_t err = esp_https_ota_begin(&ota_config, &ota_);
    if (err != ESP_OK) {
        ota_ = nullptr;  // esp_https_ota_begin sets it to NULL on error
        ESP_LOGW(TAG, "esp_https_ota_begin: %s (HTTP %d)", esp_err_to_name(err), http_status_);
    }
    return err;
}

TransferStatus EspIdfPort::transfer_open(const TransferRequest& req, TransferStart* start) {
    transfer_abort();
    uint32_t offset = 0;
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 5, 0)
    // esp_https_ota resumes only from at least one header buffer (1024 bytes); with flash
    // encryption the slot is written in 16-byte blocks.
    offset = req.resume_offset >= 1024 ? req.resume_offset : 0;
    if (esp_flash_encryption_enabled()) {
        offset &= ~0xFu;
    }
#endif
    esp_err_t err = begin_https_ota(req.url, offset, req.resume_etag);
    if (err == ESP_OK && offset > 0 && esp_https_ota_get_status_code(ota_) != 206) {
        // Not resumed. v5.5.5 restarts from zero by itself on a non-206 answer, but v5.5.0
        // would write a whole 200 body after the kept bytes; never trust it, ask again from 0.
        ESP_LOGW(TAG, "resume answered with HTTP %d: downloading from the start", esp_https_ota_get_status_code(ota_));
        transfer_abort();
        offset = 0;
        err = begin_https_ota(req.url, 0, nullptr);
    }
    start->http_status = http_status_;
    if (err != ESP_OK) {
        return client_error(http_status_) ? TransferStatus::permanent_error : TransferStatus::transient_error;
    }
    start->http_status = esp_https_ota_get_status_code(ota_);
    start->offset = offset;
    snprintf(start->etag, sizeof(start->etag), "%s", etag_);

    // The header is read before anything is written (or from the slot when resuming).
    esp_app_desc_t desc;
    err = esp_https_ota_get_img_desc(ota_, &desc);
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "esp_https_ota_get_img_desc: %s", esp_err_to_name(err));
        transfer_abort();
        return TransferStatus::transient_error;
    }
    to_description(desc, &start->image);
    bytes_in_slot_ = start->offset;
    return TransferStatus::ok;
}

TransferStatus EspIdfPort::transfer_step(uint32_t* bytes_in_slot) {
    if (ota_ == nullptr) {
        *bytes_in_slot = bytes_in_slot_;
        return TransferStatus::transient_error;
    }
    const esp_err_t err = esp_https_ota_perform(ota_);
    const int len = esp_https_ota_get_image_len_read(ota_);  // written so far, offset included
    if (len >= 0) {
        bytes_in_slot_ = static_cast<uint32_t>(len);
    }
    *bytes_in_slot = bytes_in_slot_;
    switch (err) {
        case ESP_ERR_HTTPS_OTA_IN_PROGRESS:
            return TransferStatus::in_progress;
        case ESP_OK:
            return esp_https_ota_is_complete_data_received(ota_) ? TransferStatus::complete
                                                                 : TransferStatus::transient_error;
        case ESP_ERR_INVALID_VERSION:      // chip id or chip revision of the image
        case ESP_ERR_OTA_VALIDATE_FAILED:  // not an app image (magic byte)
            ESP_LOGE(TAG, "esp_https_ota_perform: %s", esp_err_to_name(err));
            return TransferStatus::permanent_error;
        default:
            ESP_LOGW(TAG, "esp_https_ota_perform: %s", esp_err_to_name(err));
            return TransferStatus::transient_error;
    }
}

void EspIdfPort::transfer_abort() {
    if (ota_ != nullptr) {
        // Frees the handle; what esp_ota_write() put in the slot stays for a resume.
        esp_https_ota_abort(ota_);
        ota_ = nullptr;
    }
}

bool EspIdfPort::slot_sha256(uint32_t length, uint8_t digest[kSha256Bytes]) {
    // The slot esp_https_ota writes to when no staging partition is configured.
    const esp_partition_t* slot = esp_ota_get_next_update_partition(nullptr);
    if (slot == nullptr || length > slot->size) {
        return false;
    }
    static uint8_t chunk[1024];  // only the agent task hashes
    mbedtls_sha256_context ctx;
    mbedtls_sha256_init(&ctx);
    bool ok = mbedtls_sha256_starts(&ctx, 0) == 0;
    for (uint32_t at = 0; ok && at < length;) {
        const uint32_t n = length - at < sizeof(chunk) ? length - at : sizeof(chunk);
        // esp_partition_read() decrypts when flash encryption is on.
        ok = esp_partition_read(slot, at, chunk, n) == ESP_OK && mbedtls_sha256_update(&ctx, chunk, n) == 0;
        at += n;
    }
    ok = ok && mbedtls_sha256_finish(&ctx, digest) == 0;
    mbedtls_sha256_free(&ctx);
    return ok;
}

bool EspIdfPort::slot_read(uint32_t offset, void* buf, size_t len) {
    const esp_partition_t* slot = esp_ota_get_next_update_partition(nullptr);
    return slot != nullptr && offset <= slot->size && slot->size - offset >= len &&
           esp_partition_read(slot, offset, buf, len) == ESP_OK;
}

bool EspIdfPort::transfer_finish_and_set_boot() {
    if (ota_ == nullptr) {
        return false;
    }
    // esp_ota_end() verifies the image (segments, checksum, appended SHA-256, signature with
    // secure boot), then esp_ota_set_boot_partition() writes otadata with state NEW. The handle
    // is freed whatever the result.
    const esp_err_t err = esp_https_ota_finish(ota_);
    ota_ = nullptr;
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_https_ota_finish: %s", esp_err_to_name(err));
    }
    return err == ESP_OK;
}

// ---- NVS

bool EspIdfPort::kv_read(const char* key, void* buf, size_t cap, size_t* len) {
    size_t n = cap;
    if (nvs_get_blob(store_, key, buf, &n) != ESP_OK) {  // ESP_ERR_NVS_INVALID_LENGTH if > cap
        return false;
    }
    *len = n;
    return true;
}

bool EspIdfPort::kv_write(const char* key, const void* data, size_t len) {
    esp_err_t err = nvs_set_blob(store_, key, data, len);
    if (err == ESP_OK) {
        err = nvs_commit(store_);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "NVS %s/%s: %s", kStoreNamespace, key, esp_err_to_name(err));
    }
    return err == ESP_OK;
}

bool EspIdfPort::kv_erase(const char* key) {
    const esp_err_t err = nvs_erase_key(store_, key);
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        return true;
    }
    return err == ESP_OK && nvs_commit(store_) == ESP_OK;
}

}  // namespace mqota::esp_idf
