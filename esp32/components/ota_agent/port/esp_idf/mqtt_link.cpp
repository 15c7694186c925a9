#include "mqtt_link.h"

#include <stdlib.h>
#include <string.h>

#include "agent_event.h"
#include "esp_log.h"
#include "esp_random.h"
#include "mqtt_tls_session.h"
#include "reconnect_config.h"

namespace mqota::esp_idf {
namespace {

constexpr const char* TAG = "ota_agent";
constexpr int kQos = 1;

}  // namespace

esp_err_t MqttLink::start(const DeviceIdentity& identity, const char* broker_uri, QueueHandle_t events) {
    events_ = events;
    if (!topics_.init(identity.device_id)) {
        return ESP_ERR_INVALID_ARG;
    }
    // C++ has no nested designated initialisers: zero the config, then set what differs.
    esp_mqtt_client_config_t cfg = {};
    cfg.broker.address.uri = broker_uri;
    cfg.broker.verification.certificate = identity.ca_cert;  // never skipped, CN checked
    cfg.credentials.client_id = identity.device_id;          // must equal the certificate CN
    cfg.credentials.authentication.certificate = identity.client_cert;
    cfg.credentials.authentication.key = identity.client_key;
    cfg.session.disable_clean_session = true;  // the broker keeps our subscription and QoS 1 commands
    cfg.session.keepalive = 60;
    cfg.session.protocol_ver = MQTT_PROTOCOL_V_3_1_1;
    // The delay before each new attempt is the ReconnectPolicy's (schedule_reconnect).
    cfg.network.disable_auto_reconnect = true;
    // Published, retained, by the broker when the connection drops without DISCONNECT [MQTT-3.1.2-8].
    cfg.session.last_will.topic = topics_.presence();
    cfg.session.last_will.msg = kPresenceOffline;
    cfg.session.last_will.msg_len = static_cast<int>(strlen(kPresenceOffline));
    cfg.session.last_will.qos = kQos;
    cfg.session.last_will.retain = 1;
    cfg.network.timeout_ms = 10000;
    // Commands (at most 4 KiB) longer than the buffer arrive as several MQTT_EVENT_DATA and are
    // reassembled; status and announce payloads are far below it.
    cfg.buffer.size = 1024;
    cfg.outbox.limit = 8 * 1024;  // bounds the heap held by unacknowledged QoS 1 messages

    policy_ = ReconnectPolicy(reconnect_config_from_kconfig(), &MqttLink::random_u32, nullptr);
    const esp_timer_create_args_t timer = {
        .callback = &MqttLink::reconnect_now, .arg = this, .dispatch_method = ESP_TIMER_TASK, .name = "mqtt_reconnect",
        .skip_unhandled_events = true,
    };
    esp_err_t timer_err = esp_timer_create(&timer, &reconnect_timer_);
    if (timer_err != ESP_OK) {
        return timer_err;
    }
    client_ = esp_mqtt_client_init(&cfg);
    if (client_ == nullptr) {
        return ESP_FAIL;
    }
    esp_err_t err = esp_mqtt_client_register_event(client_, MQTT_EVENT_ANY, &MqttLink::on_event, this);
    if (err == ESP_OK) {
        err = esp_mqtt_client_start(client_);
    }
    if (err == ESP_OK) {
        ESP_LOGI(TAG, "connecting to %s as %s", broker_uri, identity.device_id);
    }
    return err;
}

bool MqttLink::subscribe(const char* topic) { return esp_mqtt_client_subscribe_single(client_, topic, kQos) >= 0; }

bool MqttLink::publish(const char* topic, const char* payload, size_t len) {
    // Enqueue instead of esp_mqtt_client_publish(): it never blocks the agent task on the
    // network, and with store=true a QoS 1 message waits in the outbox while disconnected.
    return esp_mqtt_client_enqueue(client_, topic, payload, static_cast<int>(len), kQos, 0, true) >= 0;
}

bool MqttLink::flush(uint32_t timeout_ms) {
    // The outbox holds QoS 1 messages until their PUBACK arrives.
    const TickType_t step = pdMS_TO_TICKS(50);
    for (uint32_t waited = 0; esp_mqtt_client_get_outbox_size(client_) > 0; waited += 50) {
        if (waited >= timeout_ms) {
            return false;
        }
        vTaskDelay(step > 0 ? step : 1);
    }
    return true;
}

void MqttLink::post(uint8_t kind, bool flag) {
    AgentEvent e = {};
    e.kind = static_cast<AgentEvent::Kind>(kind);
    e.flag = flag;
    if (xQueueSend(events_, &e, 0) != pdTRUE) {
        ESP_LOGE(TAG, "agent queue full: event %u dropped", kind);
    }
}

void MqttLink::on_data(const esp_mqtt_event_t& event) {
    if (event.data_len < 0 || event.topic_len < 0 || event.total_data_len < 0 || event.current_data_offset < 0) {
        return;
    }
    const MessageAssembler::Result r = assembler_.add(
        event.topic, static_cast<size_t>(event.topic_len), event.data, static_cast<size_t>(event.data_len),
        static_cast<size_t>(event.current_data_offset), static_cast<size_t>(event.total_data_len));
    if (r == MessageAssembler::Result::dropped) {
        ESP_LOGW(TAG, "message dropped: larger than 4 KiB or fragments out of order");
        return;
    }
    if (r != MessageAssembler::Result::complete) {
        return;
    }
    const size_t topic_len = strlen(assembler_.topic());
    const size_t payload_len = assembler_.payload_len();
    char* copy = static_cast<char*>(malloc(topic_len + 1 + payload_len + 1));
    if (copy == nullptr) {
        ESP_LOGE(TAG, "no memory for a %u-byte message", static_cast<unsigned>(payload_len));
        return;
    }
    memcpy(copy, assembler_.topic(), topic_len + 1);
    memcpy(copy + topic_len + 1, assembler_.payload(), payload_len + 1);
    AgentEvent e = {};
    e.kind = AgentEvent::message;
    e.data = copy;
    e.topic_len = topic_len;
    e.payload_len = payload_len;
    if (xQueueSend(events_, &e, 0) != pdTRUE) {
        free(copy);
        ESP_LOGE(TAG, "agent queue full: message on %s dropped", assembler_.topic());
    }
}

void MqttLink::save_tls_session() {
    if (save_mqtt_tls_session(client_)) {
        tls_session_saved_ = true;
    }
}

void MqttLink::reuse_tls_session() {
    if (tls_session_saved_) {
        reuse_mqtt_tls_session(client_);
    }
}

uint32_t MqttLink::random_u32(void*) { return esp_random(); }

void MqttLink::reconnect_now(void* arg) {
    auto* self = static_cast<MqttLink*>(arg);
    if (esp_mqtt_client_reconnect(self->client_) != ESP_OK) {
        ESP_LOGW(TAG, "reconnect request ignored: the client is not waiting to reconnect");
    }
}

void MqttLink::schedule_reconnect() {
    const ConnectFailure failure = refused_ ? ConnectFailure::refused : ConnectFailure::network;
    refused_ = false;
    const uint32_t delay = policy_.next_delay_ms(failure);
    if (failure == ConnectFailure::refused) {
        ESP_LOGW(TAG, "retrying in %u ms (refused %u times in a row)", static_cast<unsigned>(delay),
                 static_cast<unsigned>(policy_.refusals()));
    } else {
        ESP_LOGI(TAG, "retrying in %u ms (network)", static_cast<unsigned>(delay));
    }
    esp_timer_stop(reconnect_timer_);  // not running is fine
    esp_timer_start_once(reconnect_timer_, static_cast<uint64_t>(delay) * 1000);
}

void MqttLink::on_event(void* arg, esp_event_base_t, int32_t event_id, void* event_data) {
    auto* self = static_cast<MqttLink*>(arg);
    const auto* event = static_cast<const esp_mqtt_event_t*>(event_data);
    switch (static_cast<esp_mqtt_event_id_t>(event_id)) {
        case MQTT_EVENT_BEFORE_CONNECT:
            self->reuse_tls_session();
            break;
        case MQTT_EVENT_CONNECTED:
            self->policy_.on_connected();
            self->save_tls_session();
            // Retained, so whoever subscribes later learns it; it replaces the last will's offline.
            esp_mqtt_client_enqueue(self->client_, self->topics_.presence(), kPresenceOnline,
                                    static_cast<int>(strlen(kPresenceOnline)), kQos, 1, true);
            self->post(AgentEvent::connected, event->session_present != 0);  // [MQTT-3.2.2-2]
            break;
        case MQTT_EVENT_DISCONNECTED:
            // Also after a failed attempt (esp-mqtt aborts it the same way): wait, then try again.
            self->schedule_reconnect();
            self->post(AgentEvent::disconnected, false);
            break;
        case MQTT_EVENT_SUBSCRIBED:
            // esp-mqtt flags a SUBACK return code 0x80 as MQTT_ERROR_TYPE_SUBSCRIBE_FAILED.
            self->post(AgentEvent::subscribed, event->error_handle->error_type != MQTT_ERROR_TYPE_SUBSCRIBE_FAILED);
            break;
        case MQTT_EVENT_DATA:
            self->on_data(*event);
            break;
        case MQTT_EVENT_ERROR:
            if (event->error_handle->error_type == MQTT_ERROR_TYPE_CONNECTION_REFUSED) {
                // 5 = not authorized: the certificate is revoked or unknown, or the client id is not
                // its CN. Hammering cannot help: the next DISCONNECTED backs off exponentially.
                ESP_LOGE(TAG, "broker refused the connection (CONNACK %d)", event->error_handle->connect_return_code);
                self->refused_ = true;
            } else if (event->error_handle->error_type == MQTT_ERROR_TYPE_TCP_TRANSPORT) {
                ESP_LOGW(TAG, "transport error: esp-tls 0x%x, TLS stack 0x%x, certificate flags 0x%x, errno %d",
                         event->error_handle->esp_tls_last_esp_err, event->error_handle->esp_tls_stack_err,
                         event->error_handle->esp_tls_cert_verify_flags, event->error_handle->esp_transport_sock_errno);
            }
            break;
        default:
            break;
    }
}

}  // namespace mqota::esp_idf
