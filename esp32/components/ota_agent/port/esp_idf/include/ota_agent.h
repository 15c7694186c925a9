/*
 * mqota OTA agent for ESP-IDF: connects to the mqota broker over mutual TLS, announces the
 * running firmware and installs the updates the server pushes (docs/protocol.md).
 *
 * Call once, after nvs_flash_init(), esp_netif_init() and esp_event_loop_create_default(). The
 * network may come up later: the MQTT client keeps reconnecting. Identity and certificates are
 * read from the NVS namespace "mqota" (provisioned from `mqota device add`, see esp32/README.md).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "sdkconfig.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Application check run on the first boot of a new image, before it is confirmed. Return false
 * to reject the image (it is marked invalid and the previous one boots). */
typedef bool (*ota_agent_self_test_t)(void *ctx);

/* Asked before an update offer is accepted (docs/protocol.md "Deferral"). Return true to put it
 * off (busy, battery low): set *retry_after_s (1..86400) and optionally a NUL-terminated reason
 * in reason[0..reason_cap); the server offers the update again after that. Runs on the agent's
 * task: keep it short and do not block. */
typedef bool (*ota_agent_defer_t)(const char *version, uint32_t size, uint32_t *retry_after_s, char *reason,
                                  size_t reason_cap, void *ctx);

typedef struct {
    /* Broker URI; NULL: NVS mqota/broker_uri, else CONFIG_OTA_AGENT_BROKER_URI. */
    const char *broker_uri;
    /* Firmware type; NULL: CONFIG_OTA_AGENT_DEVICE_TYPE if set, else the project name. */
    const char *device_type;
    /* A new image must reach the broker within this time, or it is rolled back. */
    uint32_t self_test_timeout_ms;
    /* Download attempts before reporting `failed`. */
    uint8_t download_attempts;
    /* Optional application self-test (may be NULL). */
    ota_agent_self_test_t self_test;
    void *self_test_ctx;
    /* Optional: the application may defer an update offer (may be NULL: never defers). */
    ota_agent_defer_t defer;
    void *defer_ctx;
} ota_agent_config_t;

#define OTA_AGENT_CONFIG_DEFAULT()                                                                 \
    {                                                                                              \
        NULL, NULL, CONFIG_OTA_AGENT_SELF_TEST_TIMEOUT_MS, CONFIG_OTA_AGENT_DOWNLOAD_ATTEMPTS,     \
        NULL, NULL, NULL, NULL                                                                     \
    }

/* Starts the agent task. With a claim bundle in NVS and no identity yet, starts the claim
 * instead: the device makes its key, obtains its certificate and restarts (docs/provisioning.md).
 * ESP_ERR_NOT_FOUND: the device is not provisioned (neither bundle in NVS); ESP_ERR_NO_MEM: out
 * of memory; ESP_ERR_INVALID_STATE: already started. */
esp_err_t ota_agent_start(const ota_agent_config_t *config);

#ifdef __cplusplus
}
#endif
