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

}  // namespace

esp_err_t load_device_identity(DeviceIdentity* out) {
    nvs_handle_t nvs;
    esp_err_t err = nvs_open(kNamespace, NVS_READONLY, &nvs);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "NVS namespace \"%s\" not found (%s): provision the device with the nvs.csv of `mqota device add`",
                 kNamespace, esp_err_to_name(err));
        return ESP_ERR_NOT_FOUND;
    }
    DeviceIdentity id;
    struct {
        const char* key;
        char** value;
        bool required;
    } fields[] = {
        {"device_id", &id.device_id, true},    {"broker_uri", &id.broker_uri, false},
        {"client_cert", &id.client_cert, true}, {"client_key", &id.client_key, true},
        {"ca_cert", &id.ca_cert, true},         {"command_key", &id.command_key, false},
    };
    err = ESP_OK;
    for (auto& f : fields) {
        const esp_err_t e = read_text(nvs, f.key, f.value);
        if (e != ESP_OK && f.required) {
            ESP_LOGE(TAG, "NVS %s/%s: %s", kNamespace, f.key, esp_err_to_name(e));
            err = ESP_ERR_NOT_FOUND;
        }
    }
    nvs_close(nvs);
    if (err != ESP_OK) {
        for (auto& f : fields) {
            free(*f.value);
        }
        return err;
    }
    *out = id;
    return ESP_OK;
}

}  // namespace mqota::esp_idf
