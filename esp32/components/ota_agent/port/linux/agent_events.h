// Events from the MQTT client thread (and the signal thread) to the agent loop. The agent is
// single-threaded; this queue is how everything reaches it.
#pragma once

#include <stdint.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>

namespace mqota::linux_port {

struct AgentEvent {
    enum class Kind { connected, disconnected, subscribed, message, stop };
    Kind kind = Kind::stop;
    bool flag = false;  // connected: session present; subscribed: granted
    std::string topic;
    std::string payload;
};

class AgentEventQueue {
public:
    static constexpr size_t kCapacity = 64;

    // False (event dropped) when full; a `stop` is always queued.
    bool push(AgentEvent event) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (events_.size() >= kCapacity && event.kind != AgentEvent::Kind::stop) {
                return false;
            }
            events_.push_back(std::move(event));
        }
        ready_.notify_one();
        return true;
    }

    // Waits up to timeout_ms (UINT32_MAX: forever) for an event.
    bool pop(AgentEvent* out, uint32_t timeout_ms) {
        std::unique_lock<std::mutex> lock(mutex_);
        const auto has_event = [this] { return !events_.empty(); };
        if (timeout_ms == UINT32_MAX) {
            ready_.wait(lock, has_event);
        } else if (!ready_.wait_for(lock, std::chrono::milliseconds(timeout_ms), has_event)) {
            return false;
        }
        *out = std::move(events_.front());
        events_.pop_front();
        return true;
    }

private:
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<AgentEvent> events_;
};

}  // namespace mqota::linux_port
