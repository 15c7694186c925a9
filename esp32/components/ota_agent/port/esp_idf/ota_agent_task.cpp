// ota_agent_start(): wires the agent to ESP-IDF and runs it in its own task. The task owns the
// UpdateAgent; the MQTT event handler only queues events for it (never parses or downloads in
// the MQTT task), and the download advances one esp_https_ota_perform() per service() step, so
// queued commands are handled between chunks.
#include <stdlib.h>
#include <string.h>

#include <new>

#include "agent_event.h"
#include "claim_provisioning.h"
#include "device_identity.h"
#include "esp_idf_port.h"
#include "mbedtls_trust.h"
#include "esp_log.h"
#include "esp_secure_boot.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/task.h"
#include "mqtt_link.h"
#include "ota_agent.h"
#include "ota_agent/update_agent.h"
#include "sdkconfig.h"

namespace mqota::esp_idf {
namespace {

constexpr const char* TAG = "ota_agent";
constexpr UBaseType_t kQueueLength = 8;

struct AgentRuntime {
    AgentRuntime(const ota_agent_config_t& config, const DeviceIdentity& id)
        : identity(id), port(link, identity, config.self_test, config.self_test_ctx, config.defer, config.defer_ctx), agent(port, agent_config(config)) {}

    AgentConfig agent_config(const ota_agent_config_t& config) {
        AgentConfig c;
        c.device_id = identity.device_id;
        if (config.device_type != nullptr) {
            c.device_type = config.device_type;
        } else if (CONFIG_OTA_AGENT_DEVICE_TYPE[0] != '\0') {
            c.device_type = CONFIG_OTA_AGENT_DEVICE_TYPE;
        }
        c.self_test_timeout_ms = config.self_test_timeout_ms;
        c.download_attempts = config.download_attempts > 0 ? config.download_attempts : 1;
        // docs/security.md: with a command key in NVS, only commands signed with it are acted on
        // (a key that does not parse refuses every command rather than none).
        c.trust = &trust;
        if (identity.command_key != nullptr) {
            c.require_signed_commands = true;
            if (!trust.load_command_key(identity.command_key)) {
                ESP_LOGE("ota_agent", "NVS mqota/command_key is not an ECDSA P-256 public key: every update command is refused");
            }
        }
#if CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT
        // The keys that signed the running app are the ones ESP-IDF trusts for the next one; the
        // core checks them first so a refusal is reported as `signature-invalid`.
        if (esp_secure_boot_get_signature_blocks_for_running_app(true, &running_keys) == ESP_OK) {
            c.image_keys.digests = running_keys.key_digests;
            c.image_keys.count = running_keys.num_digests;
        }
#endif
        return c;
    }

    DeviceIdentity identity;
    MqttLink link;
    EspIdfPort port;
    MbedtlsTrust trust;
#if CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT
    esp_image_sig_public_key_digests_t running_keys = {};
#endif
    UpdateAgent agent;
    QueueHandle_t events = nullptr;
};

AgentRuntime* s_runtime = nullptr;
bool s_claiming = false;  // the claim task runs instead of the agent

void dispatch(UpdateAgent& agent, AgentEvent& e) {
    switch (e.kind) {
        case AgentEvent::connected: agent.on_connected(e.flag); break;
        case AgentEvent::disconnected: agent.on_disconnected(); break;
        case AgentEvent::subscribed: agent.on_subscribed(e.flag); break;
        case AgentEvent::message:
            agent.on_message(e.data, e.data + e.topic_len + 1, e.payload_len);
            free(e.data);
            break;
    }
}

void agent_task(void* arg) {
    auto* rt = static_cast<AgentRuntime*>(arg);
    for (;;) {
        const uint32_t wait = rt->agent.service();
        const TickType_t ticks = wait == UpdateAgent::kNoDeadline ? portMAX_DELAY : pdMS_TO_TICKS(wait);
        AgentEvent e;
        if (xQueueReceive(rt->events, &e, ticks) != pdTRUE) {
            continue;
        }
        // Everything already queued goes in before the next download step: a cancel that
        // follows an update command is seen before the download starts.
        do {
            dispatch(rt->agent, e);
        } while (xQueueReceive(rt->events, &e, 0) == pdTRUE);
    }
}

}  // namespace
}  // namespace mqota::esp_idf

extern "C" esp_err_t ota_agent_start(const ota_agent_config_t* config) {
    using namespace mqota::esp_idf;
    if (s_runtime != nullptr || s_claiming) {
        return ESP_ERR_INVALID_STATE;
    }
    const ota_agent_config_t defaults = OTA_AGENT_CONFIG_DEFAULT();
    const ota_agent_config_t& cfg = config != nullptr ? *config : defaults;

    DeviceIdentity identity;
    ClaimIdentity claim;
    esp_err_t err = load_device_identity(&identity, &claim);
    if (err == ESP_ERR_NOT_FINISHED) {
        // No identity yet, a claim certificate: claim one; the chip restarts once it is stored.
        const char* claim_broker = cfg.broker_uri != nullptr ? cfg.broker_uri
                                   : claim.broker_uri != nullptr ? claim.broker_uri
                                                                 : CONFIG_OTA_AGENT_BROKER_URI;
        err = start_claim(claim, claim_broker);
        s_claiming = err == ESP_OK;
        return err;
    }
    if (err != ESP_OK) {
        return err;
    }
    const char* broker_uri = cfg.broker_uri != nullptr    ? cfg.broker_uri
                             : identity.broker_uri != nullptr ? identity.broker_uri
                                                              : CONFIG_OTA_AGENT_BROKER_URI;

    QueueHandle_t events = xQueueCreate(kQueueLength, sizeof(AgentEvent));
    if (events == nullptr) {
        return ESP_ERR_NO_MEM;
    }
    // Lives as long as the program: esp-mqtt and esp_http_client keep pointers into it.
    // Exceptions are off in ESP-IDF (CONFIG_COMPILER_CXX_EXCEPTIONS=n), so a throwing new would
    // abort on exhaustion: ask for nullptr instead and say so.
    auto* rt = new (std::nothrow) AgentRuntime(cfg, identity);
    if (rt == nullptr) {
        ESP_LOGE(TAG, "no memory for the agent (%u bytes)", static_cast<unsigned>(sizeof(AgentRuntime)));
        vQueueDelete(events);
        return ESP_ERR_NO_MEM;
    }
    rt->events = events;
    const auto fail = [rt](esp_err_t e) {
        vQueueDelete(rt->events);
        delete rt;
        return e;
    };
    err = rt->port.open_store();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "cannot open NVS for the update record: %s", esp_err_to_name(err));
        return fail(err);
    }
    // Decide what this boot means (self-test of a new image, report of a rollback, ...) before
    // the network is up, so that the self-test deadline counts from boot.
    if (!rt->agent.start()) {
        return fail(ESP_ERR_INVALID_ARG);
    }
    // Events queue up until the task below takes them.
    err = rt->link.start(rt->identity, broker_uri, rt->events);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "MQTT client: %s", esp_err_to_name(err));
        return err;  // the client may hold pointers into rt: keep it
    }
    if (xTaskCreate(&agent_task, "ota_agent", CONFIG_OTA_AGENT_TASK_STACK_SIZE, rt, CONFIG_OTA_AGENT_TASK_PRIORITY,
                    nullptr) != pdPASS) {
        return ESP_ERR_NO_MEM;
    }
    s_runtime = rt;
    return ESP_OK;
}
