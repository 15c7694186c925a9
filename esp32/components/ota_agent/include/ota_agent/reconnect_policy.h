// When to try the broker again after a connection failed. Two kinds of failure, two answers:
//
//  * network: the broker could not be reached (no Wi-Fi yet, TCP or TLS I/O error, a broker
//    restart). Retry soon, 5-15 s by default, jittered so a fleet that lost the broker together
//    does not return in step.
//  * refused: the broker answered and said no (CONNACK 5 "not authorized": the certificate is
//    revoked or unknown, or the client id is not its CN). Retrying soon cannot help and a revoked
//    batch of thousands would hammer the broker, so the delay doubles with every refusal in a row,
//    up to a ceiling (an hour by default), with "equal jitter": half the step fixed, half random.
//    The fixed half makes each gap at least as long as the one before (until the ceiling, where gaps
//    stay between half the ceiling and the ceiling); the random half spreads a
//    batch refused at the same moment.
//
// A connection that is accepted resets both. The policy only computes delays: the port schedules
// the attempt (a timer on ESP-IDF, the link thread on Linux) and the random source is injected, so
// host tests check the delays without waiting.
#pragma once

#include <stdint.h>

namespace mqota {

enum class ConnectFailure : uint8_t { network, refused };

const char* to_string(ConnectFailure failure);

struct ReconnectPolicyConfig {
    uint32_t network_min_ms = 5000;     // network failure: uniform in [min, max]
    uint32_t network_max_ms = 15000;
    uint32_t refused_first_ms = 30000;  // first refusal: in [first/2, first]
    uint32_t refused_max_ms = 3600000;  // ceiling of every delay after refusals
};

class ReconnectPolicy {
public:
    // Returns a uniformly distributed 32-bit value (esp_random(), a PRNG in tests).
    using RandomSource = uint32_t (*)(void* ctx);

    ReconnectPolicy(const ReconnectPolicyConfig& config, RandomSource random, void* random_ctx);

    // The delay before the next attempt, after a failure of this kind.
    uint32_t next_delay_ms(ConnectFailure failure);
    // The broker accepted a connection: the next failure starts from the beginning again.
    void on_connected();

    // Refusals in a row since the last accepted connection.
    uint32_t refusals() const { return refusals_; }

private:
    uint32_t uniform(uint32_t low, uint32_t high);  // inclusive

    ReconnectPolicyConfig config_;
    RandomSource random_;
    void* random_ctx_;
    uint32_t refusals_ = 0;
};

}  // namespace mqota
