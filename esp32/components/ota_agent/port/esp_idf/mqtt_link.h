// esp-mqtt client for the agent: MQTT 3.1.1 over mutual TLS with the provisioned certificates,
// persistent session (clean session off), QoS 1. Presence for external brokers (docs/protocol.md
// "Presence"): a retained offline last will and a retained online message after every connect.
// esp-mqtt's own reconnection is off: after a failure the core's ReconnectPolicy picks the delay
// (short after a network error, exponential after the broker refused the certificate) and a
// one-shot esp_timer calls esp_mqtt_client_reconnect().
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "device_identity.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "mqtt_client.h"
#include "ota_agent/message_assembler.h"
#include "ota_agent/reconnect_policy.h"
#include "ota_agent/protocol.h"

namespace mqota::esp_idf {

class MqttLink {
public:
    esp_err_t start(const DeviceIdentity& identity, const char* broker_uri, QueueHandle_t events);

    bool subscribe(const char* topic);
    bool publish(const char* topic, const char* payload, size_t len);
    bool flush(uint32_t timeout_ms);

private:
    static void on_event(void* arg, esp_event_base_t base, int32_t event_id, void* event_data);
    void on_data(const esp_mqtt_event_t& event);
    void post(uint8_t kind, bool flag);
    void reuse_tls_session();
    void save_tls_session();
    void schedule_reconnect();
    static void reconnect_now(void* arg);
    static uint32_t random_u32(void*);

    esp_mqtt_client_handle_t client_ = nullptr;
    QueueHandle_t events_ = nullptr;
    MessageAssembler assembler_;  // used from the MQTT task only
    Topics topics_;               // the will's topic must outlive esp_mqtt_client_init
    bool tls_session_saved_ = false;
    // Used from the MQTT task only (its event handler).
    ReconnectPolicy policy_{ReconnectPolicyConfig{}, &MqttLink::random_u32, nullptr};
    bool refused_ = false;  // the current attempt ended with a CONNACK refusal
    esp_timer_handle_t reconnect_timer_ = nullptr;
};

}  // namespace mqota::esp_idf
