#include "mosquitto_link.h"

#include <mosquitto.h>

#include <errno.h>
#include <string.h>

#include <chrono>
#include <cstring>

#include "log.h"

namespace mqota::linux_port {
namespace {

constexpr int kKeepaliveSeconds = 30;
constexpr int kQos = 1;

}  // namespace

MosquittoLink::MosquittoLink(const DeviceBundle& bundle, AgentEventQueue& events, const ReconnectPolicyConfig& reconnect)
    : bundle_(bundle), events_(events), random_(std::random_device{}()), policy_(reconnect, &MosquittoLink::random_u32, this) {}

uint32_t MosquittoLink::random_u32(void* self) { return static_cast<uint32_t>(static_cast<MosquittoLink*>(self)->random_()); }

MosquittoLink::~MosquittoLink() {
    stop();
    if (mosq_ != nullptr) {
        mosquitto_destroy(mosq_);
        mosquitto_lib_cleanup();
    }
}

bool MosquittoLink::start(std::string* error) {
    mosquitto_lib_init();
    // Clean session off: the broker keeps the subscription and queues QoS 1 commands while the
    // device is offline (docs/protocol.md "Connection").
    mosq_ = mosquitto_new(bundle_.device_id.c_str(), false, this);
    if (mosq_ == nullptr) {
        *error = "mosquitto_new failed";
        return false;
    }
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    if (!topics_.init(bundle_.device_id.c_str())) {
        *error = "invalid device id";
        return false;
    }
    // The broker publishes it, retained, when the connection drops without DISCONNECT [MQTT-3.1.2-8].
    int rc = mosquitto_will_set(mosq_, topics_.presence(), static_cast<int>(strlen(kPresenceOffline)), kPresenceOffline, kQos, true);
    if (rc != MOSQ_ERR_SUCCESS) {
        *error = std::string("last will: ") + mosquitto_strerror(rc);
        return false;
    }
    rc = mosquitto_tls_set(mosq_, bundle_.ca_file.c_str(), nullptr, bundle_.cert_file.c_str(),
                               bundle_.key_file.c_str(), nullptr);
    if (rc == MOSQ_ERR_SUCCESS) {
        // SSL_VERIFY_PEER: the broker certificate must chain to ca.crt and match the host name.
        rc = mosquitto_tls_opts_set(mosq_, 1, nullptr, nullptr);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        *error = std::string("TLS setup: ") + mosquitto_strerror(rc);
        return false;
    }
    mosquitto_connect_with_flags_callback_set(mosq_, &MosquittoLink::on_connect);
    mosquitto_disconnect_callback_set(mosq_, &MosquittoLink::on_disconnect);
    mosquitto_subscribe_callback_set(mosq_, &MosquittoLink::on_subscribe);
    mosquitto_message_callback_set(mosq_, &MosquittoLink::on_message);
    mosquitto_publish_callback_set(mosq_, &MosquittoLink::on_publish);
    // Our thread runs the loop: libmosquitto must lock around calls from other threads.
    mosquitto_threaded_set(mosq_, true);
    running_ = true;
    thread_ = std::thread([this] { run(); });
    log_line(LogLevel::info, "mqtt", "connecting to %s as %s", bundle_.broker_url.c_str(), bundle_.device_id.c_str());
    return true;
}

bool MosquittoLink::wait_or_stop(uint32_t ms) {
    std::unique_lock<std::mutex> lock(stop_mutex_);
    return !stop_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return !running_.load(); });
}

void MosquittoLink::run() {
    bool first = true;
    while (running_) {
        connack_ = -1;
        // Blocking TCP connect, TLS handshake and CONNECT. mosquitto_reconnect keeps the queued
        // QoS 1 messages of the persistent session for the next connection.
        int rc = first ? mosquitto_connect(mosq_, bundle_.broker_host.c_str(), bundle_.broker_port, kKeepaliveSeconds)
                       : mosquitto_reconnect(mosq_);
        if (rc == MOSQ_ERR_SUCCESS) {
            first = false;
            while (running_ && (rc = mosquitto_loop(mosq_, 200, 1)) == MOSQ_ERR_SUCCESS) {
            }
        } else {
            log_line(LogLevel::warn, "mqtt", "connect to %s: %s", bundle_.broker_url.c_str(),
                     rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        }
        if (!running_) {
            break;
        }
        // A CONNACK other than 0 is the broker's no (revoked, unknown, wrong client id): back off.
        const ConnectFailure failure = connack_ > 0 ? ConnectFailure::refused : ConnectFailure::network;
        const uint32_t delay = policy_.next_delay_ms(failure);
        if (failure == ConnectFailure::refused) {
            log_line(LogLevel::warn, "mqtt", "retrying in %u ms (refused %u times in a row)", delay, policy_.refusals());
        } else {
            log_line(LogLevel::info, "mqtt", "retrying in %u ms (network)", delay);
        }
        if (!wait_or_stop(delay)) {
            break;
        }
    }
}

void MosquittoLink::stop() {
    if (!running_.load()) {
        return;
    }
    // A clean DISCONNECT discards the will, so say it first (best effort: not when offline), while
    // the link thread still runs the network loop that sends it and hears the PUBACK.
    if (publish_message(topics_.presence(), kPresenceOffline, strlen(kPresenceOffline), true)) {
        flush(2000);
    }
    if (!running_.exchange(false)) {
        return;
    }
    stop_cv_.notify_all();
    mosquitto_disconnect(mosq_);
    if (thread_.joinable()) {
        thread_.join();
    }
}

bool MosquittoLink::subscribe(const char* topic) {
    const int rc = mosquitto_subscribe(mosq_, nullptr, topic, kQos);
    if (rc != MOSQ_ERR_SUCCESS) {
        log_line(LogLevel::warn, "mqtt", "subscribe %s: %s", topic, mosquitto_strerror(rc));
    }
    return rc == MOSQ_ERR_SUCCESS;
}

bool MosquittoLink::publish(const char* topic, const char* payload, size_t len) {
    return publish_message(topic, payload, len, false);
}

bool MosquittoLink::publish_message(const char* topic, const char* payload, size_t len, bool retain) {
    const int rc = mosquitto_publish(mosq_, nullptr, topic, static_cast<int>(len), payload, kQos, retain);
    if (rc != MOSQ_ERR_SUCCESS) {
        log_line(LogLevel::warn, "mqtt", "publish %s: %s", topic, mosquitto_strerror(rc));
        return false;
    }
    std::lock_guard<std::mutex> lock(publish_mutex_);
    ++published_;
    log_line(LogLevel::debug, "mqtt", "publish %s %.*s", topic, static_cast<int>(len), payload);
    return true;
}

bool MosquittoLink::flush(uint32_t timeout_ms) {
    std::unique_lock<std::mutex> lock(publish_mutex_);
    // Counting is enough: a PUBACK that arrives before publish() counted its message only
    // makes acked_ run ahead for a moment.
    return acked_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return acked_ >= published_; });
}

void MosquittoLink::on_connect(struct mosquitto*, void* self, int rc, int flags) {
    auto* link = static_cast<MosquittoLink*>(self);
    link->connack_ = rc;
    if (rc != 0) {
        // CONNACK 5: not authorized: the certificate is revoked or unknown, or the client id is
        // not its CN. The run loop backs off.
        log_line(LogLevel::error, "mqtt", "connection refused: %s", mosquitto_connack_string(rc));
        return;
    }
    link->policy_.on_connected();
    link->publish_message(link->topics_.presence(), kPresenceOnline, strlen(kPresenceOnline), true);
    AgentEvent e;
    e.kind = AgentEvent::Kind::connected;
    e.flag = (flags & 0x01) != 0;  // CONNACK session present [MQTT-3.2.2-2]
    link->events_.push(std::move(e));
}

void MosquittoLink::on_disconnect(struct mosquitto*, void* self, int rc) {
    auto* link = static_cast<MosquittoLink*>(self);
    if (rc != 0) {
        log_line(LogLevel::warn, "mqtt", "connection lost: %s", mosquitto_strerror(rc));
    }
    AgentEvent e;
    e.kind = AgentEvent::Kind::disconnected;
    link->events_.push(std::move(e));
}

void MosquittoLink::on_subscribe(struct mosquitto*, void* self, int, int count, const int* granted) {
    auto* link = static_cast<MosquittoLink*>(self);
    AgentEvent e;
    e.kind = AgentEvent::Kind::subscribed;
    e.flag = count > 0 && granted[0] != 0x80;  // SUBACK return code 0x80 = failure
    link->events_.push(std::move(e));
}

void MosquittoLink::on_message(struct mosquitto*, void* self, const struct mosquitto_message* message) {
    auto* link = static_cast<MosquittoLink*>(self);
    AgentEvent e;
    e.kind = AgentEvent::Kind::message;
    e.topic = message->topic;
    if (message->payloadlen > 0) {
        e.payload.assign(static_cast<const char*>(message->payload), static_cast<size_t>(message->payloadlen));
    }
    if (!link->events_.push(std::move(e))) {
        log_line(LogLevel::error, "mqtt", "event queue full: message on %s dropped", message->topic);
    }
}

void MosquittoLink::on_publish(struct mosquitto*, void* self, int) {
    auto* link = static_cast<MosquittoLink*>(self);
    {
        std::lock_guard<std::mutex> lock(link->publish_mutex_);
        ++link->acked_;
    }
    link->acked_cv_.notify_all();
}

}  // namespace mqota::linux_port
