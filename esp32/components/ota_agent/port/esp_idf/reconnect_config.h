// The reconnection policy's settings from Kconfig (menuconfig → Component config → mqota OTA agent).
#pragma once

#include "ota_agent/reconnect_policy.h"
#include "sdkconfig.h"

namespace mqota::esp_idf {

inline ReconnectPolicyConfig reconnect_config_from_kconfig() {
    ReconnectPolicyConfig c;
    c.network_min_ms = CONFIG_OTA_AGENT_NETWORK_RETRY_MIN_MS;
    c.network_max_ms = CONFIG_OTA_AGENT_NETWORK_RETRY_MAX_MS;
    c.refused_first_ms = CONFIG_OTA_AGENT_REFUSED_BACKOFF_MS;
    c.refused_max_ms = CONFIG_OTA_AGENT_REFUSED_BACKOFF_MAX_MS;
    return c;
}

}  // namespace mqota::esp_idf
