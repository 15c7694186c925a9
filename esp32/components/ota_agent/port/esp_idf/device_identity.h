// Per-device secrets and settings in NVS, read once and kept for the life of the program, because
// esp-mqtt and esp_http_client keep pointers to the PEM strings without copying them
// (mqtt_client.h, esp_http_client.h).
//
// Namespace "mqota", written at the factory from a bundle's nvs.csv (`mqota device add`,
// `mqota device import`, or `mqota provision claim create` for a whole batch):
//   device_id, client_cert, client_key    a device bundle: the identity, key made by mqota
//   claim_id, claim_cert, claim_key       a claim bundle: no identity yet, the device claims one
//   broker_uri, ca_cert                   both
//   command_key                           both, when the server signs update commands (docs/security.md)
// Namespace "mqota_dev", written by the device itself when it claimed its identity:
//   key (made here with mbedTLS, never sent), cert (from the server), device_id.
#pragma once

#include "esp_err.h"

namespace mqota::esp_idf {

struct DeviceIdentity {
    char* device_id = nullptr;
    char* broker_uri = nullptr;   // nullptr if not provisioned
    char* client_cert = nullptr;  // PEM
    char* client_key = nullptr;   // PEM (PKCS#8 from mqota, SEC1 when made on the device)
    char* ca_cert = nullptr;      // PEM: the mqota server CA, for the broker and the image server
    char* command_key = nullptr;  // PEM public key; nullptr: update commands are not signature-checked
};

// A device with a claim certificate and no identity yet.
struct ClaimIdentity {
    char* claim_id = nullptr;
    char* claim_cert = nullptr;
    char* claim_key = nullptr;
    char* broker_uri = nullptr;
    char* ca_cert = nullptr;
};

// ESP_OK with *identity filled: run as the device. ESP_ERR_NOT_FINISHED with *claim filled: no
// identity yet, claim one. ESP_ERR_NOT_FOUND: neither is provisioned.
esp_err_t load_device_identity(DeviceIdentity* identity, ClaimIdentity* claim);

namespace nvs_text {
// Reads a string (or blob) from NVS into a malloc'd NUL-terminated buffer.
esp_err_t read(const char* ns, const char* key, char** out);
esp_err_t write(const char* ns, const char* key, const char* value);
}  // namespace nvs_text

// Namespace of what the device wrote itself.
constexpr const char* kDeviceNamespace = "mqota_dev";

}  // namespace mqota::esp_idf
