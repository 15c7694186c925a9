// Provisioning by claim on ESP-IDF (docs/provisioning.md): a device flashed with its batch's claim
// bundle and no identity of its own makes an ECDSA P-256 key with mbedTLS (kept in NVS mqota_dev/key,
// never sent), connects with the claim certificate as `{claimId}:{deviceId}`, sends a CSR and
// stores the certificate it gets in NVS (mqota_dev/cert, mqota_dev/device_id), then restarts and
// connects as the device. The device id is NVS mqota/device_id if the factory set one, else
// CONFIG_OTA_AGENT_CLAIM_ID_PREFIX + the eFuse MAC in hex.
#pragma once

#include "device_identity.h"
#include "esp_err.h"

namespace mqota::esp_idf {

// Starts the claim task; it restarts the chip once a certificate is stored.
esp_err_t start_claim(const ClaimIdentity& claim, const char* broker_uri);

}  // namespace mqota::esp_idf
