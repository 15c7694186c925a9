#include "ota_agent/message_assembler.h"

#include <string.h>

namespace mqota {

MessageAssembler::Result MessageAssembler::add(const char* topic, size_t topic_len, const char* data,
                                               size_t len, size_t offset, size_t total_len) {
    if (offset == 0) {
        // A first fragment always starts a new message, even if the previous one never finished
        // (the connection dropped mid-message; the broker redelivers it, QoS 1).
        active_ = false;
        if (topic == nullptr || topic_len == 0 || topic_len > kTopicMax || total_len > kMaxPayloadBytes) {
            return Result::dropped;
        }
        memcpy(topic_, topic, topic_len);
        topic_[topic_len] = '\0';
        total_ = total_len;
        received_ = 0;
        active_ = true;
    } else if (!active_ || total_len != total_ || offset != received_) {
        active_ = false;
        return Result::dropped;
    }
    if (len > total_ - received_ || (len > 0 && data == nullptr)) {
        active_ = false;
        return Result::dropped;
    }
    if (len > 0) {
        memcpy(payload_ + received_, data, len);
    }
    received_ += len;
    if (received_ < total_) {
        return Result::incomplete;
    }
    payload_[total_] = '\0';
    active_ = false;
    return Result::complete;
}

}  // namespace mqota
