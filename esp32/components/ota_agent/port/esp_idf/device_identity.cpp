#include "device_identity.h"

#include <stdlib.h>
#include <string.h>

#include "esp_log.h"
#include "nvs.h"

namespace mqota::esp_idf {
namespace {

constexpr const char* TAG = "ota_agent";
constexpr const char* kNamespace = "mqota";

// nvs_partition_gen.py stores `file` entries with encoding `string` as NVS strings; accept a
// blob too (encoding `binary`) and NUL-terminate it.
esp_err_t read_text(nvs_handle_t nvs, const char* key, char** out) {
    size_t len = 0;
    esp_err_t err = nvs_get_str(nvs, key, nullptr, &len);
    if (err == ESP_OK) {
        char* buf = static_cast<char*>(malloc(len));
        if (buf == nullptr) {
            return ESP_ERR_NO_MEM;
        }
        err = nvs_get_str(nvs, key, buf, &len);
        if (err != ESP_OK) {
            free(buf);
            return err;
        }
        *out = buf;
        return ESP_OK;
    }
    if (err != ESP_ERR_NVS_TYPE_MISMATCH) {
        return err;
    }
    err = nvs_get_blob(nvs, key, nullptr, &len);
    if (err != ESP_OK) {
        return err;
    }
    char* buf = static_cast<char*>(malloc(len + 1));
    if (buf == nullptr) {
        return ESP_ERR_NO_MEM;
    }
    err = nvs_get_blob(nvs, key, buf, &len);
    if (err != ESP_OK) {
        free(buf);
        return err;
    }
    buf[len] = '\0';
    *out = buf;
    return ESP_OK;
}

struct Field {
    const char* ns;
    const char* key;
    char** value;
};

// Reads every field; on any failure frees what was read and returns the first error.
esp_err_t read_all(Field* fields, size_t count, bool log_missing) {
    esp_err_t result = ESP_OK;
    for (size_t i = 0; i < count; ++i) {
        const esp_err_t e = nvs_text::read(fields[i].ns, fields[i].key, fields[i].value);
        if (e != ESP_OK) {
            if (log_missing) {
                ESP_LOGE(TAG, "NVS %s/%s: %s", fields[i].ns, fields[i].key, esp_err_to_name(e));
            }
            if (result == ESP_OK) {
                result = e;
            }
        }
    }
    if (result != ESP_OK) {
        for (size_t i = 0; i < count; ++i) {
            free(*fields[i].value);
            *fields[i].value = nullptr;
        }
    }
    return result;
}

}  // namespace

namespace nvs_text {

esp_err_t read(const char* ns, const char* key, char** out) {
    nvs_handle_t nvs;
    esp_err_t err = nvs_open(ns, NVS_READONLY, &nvs);
    if (err != ESP_OK) {
        return err;
    }
    err = read_text(nvs, key, out);
    nvs_close(nvs);
    return err;
}

esp_err_t write(const char* ns, const char* key, const char* value) {
    nvs_handle_t nvs;
    esp_err_t err = nvs_open(ns, NVS_READWRITE, &nvs);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_set_str(nvs, key, value);
    if (err == ESP_OK) {
        err = nvs_commit(nvs);
    }
    nvs_close(nvs);
    return err;
}

}  // namespace nvs_text

esp_err_t load_device_identity(DeviceIdentity* out, ClaimIdentity* claim) {
    DeviceIdentity id;
    // broker_uri is optional (CONFIG_OTA_AGENT_BROKER_URI otherwise); command_key only when the
    // server signs update commands (docs/security.md), in a device bundle and a claim bundle alike.
    nvs_text::read(kNamespace, "broker_uri", &id.broker_uri);
    nvs_text::read(kNamespace, "command_key", &id.command_key);

    // 1. A device bundle from the factory.
    Field bundle[] = {{kNamespace, "device_id", &id.device_id}, {kNamespace, "client_cert", &id.client_cert},
                      {kNamespace, "client_key", &id.client_key}, {kNamespace, "ca_cert", &id.ca_cert}};
    if (read_all(bundle, sizeof(bundle) / sizeof(bundle[0]), false) == ESP_OK) {
        *out = id;
        return ESP_OK;
    }
    // 2. An identity this device claimed before: its own key, its certificate.
    Field claimed[] = {{kDeviceNamespace, "device_id", &id.device_id}, {kDeviceNamespace, "cert", &id.client_cert},
                       {kDeviceNamespace, "key", &id.client_key}, {kNamespace, "ca_cert", &id.ca_cert}};
    if (read_all(claimed, sizeof(claimed) / sizeof(claimed[0]), false) == ESP_OK) {
        *out = id;
        return ESP_OK;
    }
    // 3. A claim bundle: no identity yet.
    ClaimIdentity c;
    c.broker_uri = id.broker_uri;
    Field claim_fields[] = {{kNamespace, "claim_id", &c.claim_id}, {kNamespace, "claim_cert", &c.claim_cert},
                            {kNamespace, "claim_key", &c.claim_key}, {kNamespace, "ca_cert", &c.ca_cert}};
    if (read_all(claim_fields, sizeof(claim_fields) / sizeof(claim_fields[0]), false) == ESP_OK) {
        *claim = c;
        // Read again, with the claimed identity, after the restart that follows the claim.
        free(id.command_key);
        return ESP_ERR_NOT_FINISHED;
    }
    ESP_LOGE(TAG, "NVS namespace \"%s\" holds neither a device bundle (device_id, client_cert, client_key, ca_cert) nor a "
                  "claim bundle (claim_id, claim_cert, claim_key, ca_cert): flash the nvs.bin made from a bundle's nvs.csv",
             kNamespace);
    free(id.broker_uri);
    free(id.command_key);
    return ESP_ERR_NOT_FOUND;
}

}  // namespace mqota::esp_idf
