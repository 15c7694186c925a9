#include "claim_provisioning.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

#include "esp_log.h"
#include "esp_mac.h"
#include "esp_random.h"
#include "esp_system.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/task.h"
#include "mbedtls/ecp.h"
#include "mbedtls/pk.h"
#include "mbedtls/platform_util.h"
#include "mbedtls/x509_csr.h"
#include "mqtt_client.h"
#include "ota_agent/claim.h"
#include "ota_agent/reconnect_policy.h"
#include "reconnect_config.h"
#include "sdkconfig.h"

namespace mqota::esp_idf {
namespace {

constexpr const char* TAG = "ota_claim";
constexpr size_t kKeyPemMax = 512;   // an EC P-256 key in SEC1 PEM is ~230 bytes
constexpr size_t kCsrPemMax = 1024;  // a P-256 CSR with a 64-character CN is ~500 bytes
constexpr uint32_t kAnswerWaitMs = 30000;

int fill_random(void*, unsigned char* out, size_t len) {
    esp_fill_random(out, len);  // the hardware RNG; a true RNG while Wi-Fi or Bluetooth runs
    return 0;
}

uint32_t random_u32(void*) { return esp_random(); }

// The device key: NVS mqota_dev/key, or made now and stored there before anything is sent.
esp_err_t device_key(mbedtls_pk_context* pk) {
    char* pem = nullptr;
    if (nvs_text::read(kDeviceNamespace, "key", &pem) == ESP_OK) {
        const int rc = mbedtls_pk_parse_key(pk, reinterpret_cast<const unsigned char*>(pem), strlen(pem) + 1, nullptr, 0,
                                            fill_random, nullptr);
        free(pem);
        if (rc != 0) {
            ESP_LOGE(TAG, "NVS %s/key does not parse (-0x%04x)", kDeviceNamespace, static_cast<unsigned>(-rc));
            return ESP_ERR_INVALID_STATE;
        }
        return ESP_OK;
    }
    int rc = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (rc == 0) {
        rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk), fill_random, nullptr);
    }
    unsigned char buf[kKeyPemMax];
    if (rc == 0) {
        rc = mbedtls_pk_write_key_pem(pk, buf, sizeof(buf));
    }
    if (rc != 0) {
        ESP_LOGE(TAG, "cannot make an ECDSA P-256 key (-0x%04x)", static_cast<unsigned>(-rc));
        return ESP_FAIL;
    }
    const esp_err_t err = nvs_text::write(kDeviceNamespace, "key", reinterpret_cast<const char*>(buf));
    mbedtls_platform_zeroize(buf, sizeof(buf));
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "cannot store the device key in NVS: %s", esp_err_to_name(err));
        return err;
    }
    ESP_LOGI(TAG, "made a new ECDSA P-256 device key (NVS %s/key)", kDeviceNamespace);
    return ESP_OK;
}

esp_err_t make_csr(mbedtls_pk_context* pk, const char* device_id, char* out, size_t cap) {
    mbedtls_x509write_csr csr;
    mbedtls_x509write_csr_init(&csr);
    mbedtls_x509write_csr_set_md_alg(&csr, MBEDTLS_MD_SHA256);
    mbedtls_x509write_csr_set_key(&csr, pk);
    char subject[8 + kDeviceIdMax];
    snprintf(subject, sizeof(subject), "CN=%s", device_id);  // ids have no ',', '=' or '+'
    int rc = mbedtls_x509write_csr_set_subject_name(&csr, subject);
    if (rc == 0) {
        rc = mbedtls_x509write_csr_pem(&csr, reinterpret_cast<unsigned char*>(out), cap, fill_random, nullptr);
    }
    mbedtls_x509write_csr_free(&csr);
    if (rc != 0) {
        ESP_LOGE(TAG, "cannot make the CSR (-0x%04x)", static_cast<unsigned>(-rc));
        return ESP_FAIL;
    }
    return ESP_OK;
}

// What the MQTT event handler tells the claim task.
struct ClaimEvent {
    enum Kind : uint8_t { connected, subscribed, answered, refused, disconnected } kind;
    bool flag;  // subscribed: granted
    ClaimAnswer answer;
};

struct ClaimRun {
    ClaimTopics topics;
    char device_id[kDeviceIdMax + 1];
    char* request = nullptr;  // {"csr": ...}
    char cert[kCertificatePemMax + 1];
    esp_mqtt_client_handle_t client = nullptr;
    QueueHandle_t events = nullptr;
};

void post(ClaimRun* run, const ClaimEvent& e) {
    if (xQueueSend(run->events, &e, 0) != pdTRUE) {
        ESP_LOGW(TAG, "claim queue full: event dropped");
    }
}

void on_event(void* arg, esp_event_base_t, int32_t event_id, void* event_data) {
    auto* run = static_cast<ClaimRun*>(arg);
    const auto* event = static_cast<const esp_mqtt_event_t*>(event_data);
    ClaimEvent e = {};
    switch (static_cast<esp_mqtt_event_id_t>(event_id)) {
        case MQTT_EVENT_CONNECTED: e.kind = ClaimEvent::connected; post(run, e); break;
        case MQTT_EVENT_SUBSCRIBED:
            e.kind = ClaimEvent::subscribed;
            e.flag = event->error_handle->error_type != MQTT_ERROR_TYPE_SUBSCRIBE_FAILED;
            post(run, e);
            break;
        case MQTT_EVENT_DATA:
            // The answer fits in one buffer (buffer.size below); a fragment is not an answer.
            if (event->current_data_offset != 0 || event->data_len != event->total_data_len || event->data_len < 0) {
                break;
            }
            e.kind = ClaimEvent::answered;
            e.answer = decode_claim_answer(event->data, static_cast<size_t>(event->data_len), run->device_id, run->cert, sizeof(run->cert));
            if (e.answer.status != ClaimStatus::invalid) {
                post(run, e);
            }
            break;
        case MQTT_EVENT_ERROR:
            if (event->error_handle->error_type == MQTT_ERROR_TYPE_CONNECTION_REFUSED) {
                ESP_LOGE(TAG, "broker refused the claim certificate (CONNACK %d)", event->error_handle->connect_return_code);
                e.kind = ClaimEvent::refused;
                post(run, e);
            }
            break;
        case MQTT_EVENT_DISCONNECTED: e.kind = ClaimEvent::disconnected; post(run, e); break;
        default: break;
    }
}

void store_and_restart(ClaimRun* run) {
    esp_err_t err = nvs_text::write(kDeviceNamespace, "cert", run->cert);
    if (err == ESP_OK) {
        err = nvs_text::write(kDeviceNamespace, "device_id", run->device_id);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "cannot store the certificate in NVS: %s; claiming again after a restart", esp_err_to_name(err));
    } else {
        ESP_LOGI(TAG, "certificate of %s stored; restarting to connect as the device", run->device_id);
    }
    esp_mqtt_client_stop(run->client);
    esp_restart();
}

void claim_task(void* arg) {
    auto* run = static_cast<ClaimRun*>(arg);
    ReconnectPolicy policy(reconnect_config_from_kconfig(), random_u32, nullptr);
    bool waiting = false;       // connected and asked: an answer (or approval) may come
    bool refused = false;       // this attempt ended in a refusal
    for (;;) {
        ClaimEvent e;
        const TickType_t wait = waiting ? pdMS_TO_TICKS(kAnswerWaitMs) : portMAX_DELAY;
        if (xQueueReceive(run->events, &e, wait) != pdTRUE) {
            // Asked, no answer yet (lost, or the server restarted): ask again on this connection.
            esp_mqtt_client_enqueue(run->client, run->topics.request(), run->request, 0, 1, 0, true);
            continue;
        }
        switch (e.kind) {
            case ClaimEvent::connected:
                refused = false;
                esp_mqtt_client_subscribe_single(run->client, run->topics.response(), 1);
                break;
            case ClaimEvent::subscribed:
                if (!e.flag) {
                    ESP_LOGE(TAG, "subscription to %s refused", run->topics.response());
                    refused = true;
                    esp_mqtt_client_disconnect(run->client);
                    break;
                }
                esp_mqtt_client_enqueue(run->client, run->topics.request(), run->request, 0, 1, 0, true);
                ESP_LOGI(TAG, "asked for the certificate of %s on %s", run->device_id, run->topics.request());
                waiting = true;
                break;
            case ClaimEvent::answered:
                if (e.answer.status == ClaimStatus::issued) {
                    store_and_restart(run);
                } else if (e.answer.status == ClaimStatus::pending) {
                    policy.on_connected();
                    ESP_LOGI(TAG, "request of %s waits for an operator's approval", run->device_id);
                } else {
                    ESP_LOGE(TAG, "request of %s refused: %s (%s)", run->device_id, e.answer.error, e.answer.reason);
                    refused = true;
                    waiting = false;
                    esp_mqtt_client_disconnect(run->client);
                }
                break;
            case ClaimEvent::refused:
                refused = true;
                break;
            case ClaimEvent::disconnected: {
                waiting = false;
                const ConnectFailure failure = refused ? ConnectFailure::refused : ConnectFailure::network;
                const uint32_t delay = policy.next_delay_ms(failure);
                ESP_LOGW(TAG, "claiming again in %u ms (%s)", static_cast<unsigned>(delay), to_string(failure));
                vTaskDelay(pdMS_TO_TICKS(delay) > 0 ? pdMS_TO_TICKS(delay) : 1);
                refused = false;
                // Auto-reconnect is off: the delay above is the policy's, not esp-mqtt's.
                if (esp_mqtt_client_reconnect(run->client) != ESP_OK) {
                    esp_mqtt_client_stop(run->client);
                    esp_mqtt_client_start(run->client);
                }
                break;
            }
        }
    }
}

// CONFIG_OTA_AGENT_CLAIM_ID_PREFIX + the factory MAC (eFuse), e.g. "esp32-a0b1c2d3e4f5".
esp_err_t claimed_device_id(char* out, size_t cap) {
    char* preset = nullptr;
    if (nvs_text::read("mqota", "device_id", &preset) == ESP_OK) {
        snprintf(out, cap, "%s", preset);
        free(preset);
        return ESP_OK;
    }
    uint8_t mac[6];
    const esp_err_t err = esp_efuse_mac_get_default(mac);
    if (err != ESP_OK) {
        return err;
    }
    snprintf(out, cap, "%s%02x%02x%02x%02x%02x%02x", CONFIG_OTA_AGENT_CLAIM_ID_PREFIX, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    return ESP_OK;
}

}  // namespace

esp_err_t start_claim(const ClaimIdentity& claim, const char* broker_uri) {
    auto* run = new (std::nothrow) ClaimRun();
    if (run == nullptr) {
        return ESP_ERR_NO_MEM;
    }
    esp_err_t err = claimed_device_id(run->device_id, sizeof(run->device_id));
    if (err == ESP_OK && !run->topics.init(claim.claim_id, run->device_id)) {
        ESP_LOGE(TAG, "claim id \"%s\" or device id \"%s\" is not valid", claim.claim_id, run->device_id);
        err = ESP_ERR_INVALID_ARG;
    }
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    char* csr = err == ESP_OK ? static_cast<char*>(malloc(kCsrPemMax)) : nullptr;
    const size_t request_cap = kCsrPemMax + 64;
    run->request = err == ESP_OK ? static_cast<char*>(malloc(request_cap)) : nullptr;
    if (err == ESP_OK && (csr == nullptr || run->request == nullptr)) {
        err = ESP_ERR_NO_MEM;
    }
    if (err == ESP_OK) {
        err = device_key(&pk);
    }
    if (err == ESP_OK) {
        err = make_csr(&pk, run->device_id, csr, kCsrPemMax);
    }
    mbedtls_pk_free(&pk);
    if (err == ESP_OK && encode_claim_request(csr, run->request, request_cap) == 0) {
        err = ESP_ERR_INVALID_SIZE;
    }
    free(csr);
    run->events = err == ESP_OK ? xQueueCreate(8, sizeof(ClaimEvent)) : nullptr;
    if (err == ESP_OK && run->events == nullptr) {
        err = ESP_ERR_NO_MEM;
    }
    if (err == ESP_OK) {
        esp_mqtt_client_config_t cfg = {};
        cfg.broker.address.uri = broker_uri;
        cfg.broker.verification.certificate = claim.ca_cert;
        cfg.credentials.client_id = run->topics.client_id();  // {claimId}:{deviceId}
        cfg.credentials.authentication.certificate = claim.claim_cert;
        cfg.credentials.authentication.key = claim.claim_key;
        cfg.session.disable_clean_session = false;  // the broker requires a clean session for claims
        cfg.session.keepalive = 60;
        cfg.session.protocol_ver = MQTT_PROTOCOL_V_3_1_1;
        cfg.network.disable_auto_reconnect = true;  // claim_task decides when (ReconnectPolicy)
        cfg.network.timeout_ms = 10000;
        cfg.buffer.size = kCertificatePemMax + 512;  // the answer in one MQTT_EVENT_DATA
        run->client = esp_mqtt_client_init(&cfg);
        if (run->client == nullptr) {
            err = ESP_FAIL;
        }
    }
    if (err == ESP_OK) {
        err = esp_mqtt_client_register_event(run->client, MQTT_EVENT_ANY, &on_event, run);
    }
    if (err == ESP_OK && xTaskCreate(&claim_task, "ota_claim", CONFIG_OTA_AGENT_TASK_STACK_SIZE, run, CONFIG_OTA_AGENT_TASK_PRIORITY, nullptr) != pdPASS) {
        err = ESP_ERR_NO_MEM;
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "claim: %s", esp_err_to_name(err));
        if (run->client != nullptr) {
            esp_mqtt_client_destroy(run->client);
        }
        if (run->events != nullptr) {
            vQueueDelete(run->events);
        }
        free(run->request);
        delete run;
        return err;
    }
    // The task owns run from here; esp-mqtt keeps pointers into it and into claim.
    err = esp_mqtt_client_start(run->client);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "claim: MQTT client: %s", esp_err_to_name(err));
        return err;
    }
    ESP_LOGI(TAG, "no device certificate yet: claiming %s with claim %s at %s", run->device_id, claim.claim_id, broker_uri);
    return ESP_OK;
}

}  // namespace mqota::esp_idf
