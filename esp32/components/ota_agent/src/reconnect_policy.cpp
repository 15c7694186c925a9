#include "ota_agent/reconnect_policy.h"

namespace mqota {

const char* to_string(ConnectFailure failure) {
    switch (failure) {
        case ConnectFailure::network: return "network";
        case ConnectFailure::refused: return "refused";
    }
    return "?";
}

ReconnectPolicy::ReconnectPolicy(const ReconnectPolicyConfig& config, RandomSource random, void* random_ctx)
    : config_(config), random_(random), random_ctx_(random_ctx) {
    // Keep the ranges well-formed whatever the configuration says.
    if (config_.network_max_ms < config_.network_min_ms) {
        config_.network_max_ms = config_.network_min_ms;
    }
    if (config_.refused_first_ms == 0) {
        config_.refused_first_ms = 1;
    }
    if (config_.refused_max_ms < config_.refused_first_ms) {
        config_.refused_max_ms = config_.refused_first_ms;
    }
}

uint32_t ReconnectPolicy::uniform(uint32_t low, uint32_t high) {
    const uint64_t span = static_cast<uint64_t>(high) - low + 1;
    return low + static_cast<uint32_t>(random_(random_ctx_) % span);
}

uint32_t ReconnectPolicy::next_delay_ms(ConnectFailure failure) {
    if (failure == ConnectFailure::network) {
        return uniform(config_.network_min_ms, config_.network_max_ms);
    }
    if (refusals_ < UINT32_MAX) {
        ++refusals_;
    }
    // step = first * 2^(refusals-1), capped; computed without overflow.
    uint64_t step = config_.refused_first_ms;
    for (uint32_t i = 1; i < refusals_ && step < config_.refused_max_ms; ++i) {
        step *= 2;
    }
    if (step > config_.refused_max_ms) {
        step = config_.refused_max_ms;
    }
    const uint32_t half = static_cast<uint32_t>(step / 2);
    return uniform(static_cast<uint32_t>(step) - half, static_cast<uint32_t>(step));
}

void ReconnectPolicy::on_connected() { refusals_ = 0; }

}  // namespace mqota
