#include "mqtt_tls_session.h"

#include "esp_idf_version.h"
#include "esp_transport_ssl.h"
#include "sdkconfig.h"

// esp_mqtt_client_get_transport() is in the esp-mqtt of ESP-IDF v5.5.1 and later.
#if CONFIG_ESP_TLS_CLIENT_SESSION_TICKETS && ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 5, 1)
#define MQOTA_MQTT_TLS_SESSION_REUSE 1
#else
#define MQOTA_MQTT_TLS_SESSION_REUSE 0
#endif

namespace mqota::esp_idf {

bool save_mqtt_tls_session(esp_mqtt_client_handle_t client) {
#if MQOTA_MQTT_TLS_SESSION_REUSE
    char scheme[] = MQTT_OVER_SSL_SCHEME;
    esp_transport_handle_t t = esp_mqtt_client_get_transport(client, scheme);
    return t != nullptr && esp_transport_ssl_session_ticket_operation(t, ESP_TRANSPORT_SESSION_TICKET_SAVE) == ESP_OK;
#else
    (void)client;
    return false;
#endif
}

void reuse_mqtt_tls_session(esp_mqtt_client_handle_t client) {
#if MQOTA_MQTT_TLS_SESSION_REUSE
    char scheme[] = MQTT_OVER_SSL_SCHEME;
    esp_transport_handle_t t = esp_mqtt_client_get_transport(client, scheme);
    if (t != nullptr) {
        // Points the next handshake at the saved ticket (ssl->cfg.client_session).
        esp_transport_ssl_session_ticket_operation(t, ESP_TRANSPORT_SESSION_TICKET_USE);
    }
#else
    (void)client;
#endif
}

}  // namespace mqota::esp_idf
