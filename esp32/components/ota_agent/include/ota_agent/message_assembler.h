// Reassembles one MQTT PUBLISH that the client delivers in pieces. esp-mqtt fires several
// MQTT_EVENT_DATA events for a message longer than its buffer: only the first carries the topic,
// each carries current_data_offset and total_data_len (mqtt_client.h). Commands are parsed only
// once complete; anything longer than kMaxPayloadBytes is dropped.
#pragma once

#include <stddef.h>

#include "ota_agent/limits.h"

namespace mqota {

class MessageAssembler {
public:
    enum class Result { incomplete, complete, dropped };

    // topic/topic_len: present on the first fragment only (topic_len 0 on the others).
    Result add(const char* topic, size_t topic_len, const char* data, size_t len, size_t offset,
               size_t total_len);

    // Valid after `complete`, until the next add(). Both are NUL-terminated.
    const char* topic() const { return topic_; }
    const char* payload() const { return payload_; }
    size_t payload_len() const { return total_; }

private:
    char topic_[kTopicMax + 1] = {};
    char payload_[kMaxPayloadBytes + 1] = {};
    size_t total_ = 0;
    size_t received_ = 0;
    bool active_ = false;
};

}  // namespace mqota
