// What the MQTT client task hands to the agent task through a FreeRTOS queue. The agent never
// runs inside the MQTT event handler: that handler only copies and queues.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace mqota::esp_idf {

struct AgentEvent {
    enum Kind : uint8_t { connected, disconnected, subscribed, message };
    Kind kind;
    bool flag;         // connected: session present; subscribed: granted
    char* data;        // message: malloc'd "topic\0payload\0", freed by the receiver
    size_t topic_len;
    size_t payload_len;
};

}  // namespace mqota::esp_idf
