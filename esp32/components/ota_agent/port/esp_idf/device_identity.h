// Per-device secrets and settings provisioned into NVS by `mqota device add` (nvs.csv, namespace
// "mqota"): device_id, broker_uri, client_cert, client_key, ca_cert, and command_key when the
// server signs update commands (docs/security.md). Read once and kept for the
// life of the program, because esp-mqtt and esp_http_client keep pointers to the PEM strings
// without copying them (mqtt_client.h, esp_http_client.h).
#pragma once

#include "esp_err.h"

namespace mqota::esp_idf {

struct DeviceIdentity {
    char* device_id = nullptr;
    char* broker_uri = nullptr;   // nullptr if not provisioned
    char* client_cert = nullptr;  // PEM
    char* client_key = nullptr;   // PEM, PKCS#8
    char* ca_cert = nullptr;      // PEM: the mqota server CA, for the broker and the image server
    char* command_key = nullptr;  // PEM public key; nullptr: update commands are not signature-checked
};

esp_err_t load_device_identity(DeviceIdentity* out);

}  // namespace mqota::esp_idf
