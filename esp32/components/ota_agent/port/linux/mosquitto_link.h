// MQTT 3.1.1 over mutual TLS with libmosquitto: client id = device id (the certificate CN, which
// the broker requires), clean session off, QoS 1. Presence for external brokers (docs/protocol.md
// "Presence"): a retained offline last will, a retained online message after every connect, and
// an offline one before a clean stop (a DISCONNECT discards the will [MQTT-3.1.2-10]). The link's
// own thread connects, runs the network loop and, after a failure, waits as the core's
// ReconnectPolicy says: a short jittered retry after a network error, an exponential back-off
// after the broker refused the certificate (CONNACK 5). Its callbacks only queue AgentEvents.
#pragma once

#include <stdint.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "agent_events.h"
#include "device_bundle.h"
#include "ota_agent/reconnect_policy.h"
#include "ota_agent/protocol.h"

struct mosquitto;
struct mosquitto_message;

namespace mqota::linux_port {

class MosquittoLink {
public:
    MosquittoLink(const DeviceBundle& bundle, AgentEventQueue& events, const ReconnectPolicyConfig& reconnect);
    ~MosquittoLink();
    MosquittoLink(const MosquittoLink&) = delete;
    MosquittoLink& operator=(const MosquittoLink&) = delete;

    bool start(std::string* error);
    void stop();  // DISCONNECT (the session stays on the broker) and join the network thread

    bool subscribe(const char* topic);
    bool publish(const char* topic, const char* payload, size_t len);
    bool flush(uint32_t timeout_ms);

private:
    static void on_connect(struct mosquitto*, void* self, int rc, int flags);
    static void on_disconnect(struct mosquitto*, void* self, int rc);
    static void on_subscribe(struct mosquitto*, void* self, int mid, int count, const int* granted);
    static void on_message(struct mosquitto*, void* self, const struct mosquitto_message* message);
    static void on_publish(struct mosquitto*, void* self, int mid);
    static uint32_t random_u32(void* self);

    void run();
    bool wait_or_stop(uint32_t ms);
    bool publish_message(const char* topic, const char* payload, size_t len, bool retain);

    const DeviceBundle& bundle_;
    AgentEventQueue& events_;
    struct mosquitto* mosq_ = nullptr;
    std::atomic<bool> running_{false};
    std::thread thread_;
    std::mutex stop_mutex_;
    std::condition_variable stop_cv_;

    std::mt19937 random_;
    ReconnectPolicy policy_;  // used from the link thread only
    int connack_ = -1;        // CONNACK return code of the current attempt, -1 before one
    Topics topics_;

    std::mutex publish_mutex_;
    std::condition_variable acked_cv_;
    uint64_t published_ = 0;  // QoS 1 PUBLISHes handed to libmosquitto
    uint64_t acked_ = 0;      // PUBACKs received
};

}  // namespace mqota::linux_port
