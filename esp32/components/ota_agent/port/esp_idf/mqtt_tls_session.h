// TLS session resumption (RFC 5077 session tickets) for esp-mqtt reconnections, done the way
// esp_http_client does it for save_client_session: save the session once connected, offer it
// before the next handshake. Kept apart because it needs esp_transport_ssl.h, hence esp-tls.
// Without CONFIG_ESP_TLS_CLIENT_SESSION_TICKETS, or before ESP-IDF v5.5.1, both do nothing.
#pragma once

#include "mqtt_client.h"

namespace mqota::esp_idf {

// On MQTT_EVENT_CONNECTED. True if a session was saved.
bool save_mqtt_tls_session(esp_mqtt_client_handle_t client);
// On MQTT_EVENT_BEFORE_CONNECT, if a session was saved before.
void reuse_mqtt_tls_session(esp_mqtt_client_handle_t client);

}  // namespace mqota::esp_idf
