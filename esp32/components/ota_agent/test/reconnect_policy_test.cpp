// The reconnection policy with an injected random source: delays checked without waiting.
#include "ota_agent/reconnect_policy.h"

#include <gtest/gtest.h>

#include <random>

namespace mqota {
namespace {

uint32_t fixed(void* ctx) { return *static_cast<uint32_t*>(ctx); }
uint32_t mt(void* ctx) { return (*static_cast<std::mt19937*>(ctx))(); }

TEST(ReconnectPolicy, NetworkFailuresRetrySoonWithinTheJitterRange) {
    std::mt19937 rng(1);
    ReconnectPolicy policy(ReconnectPolicyConfig{}, &mt, &rng);
    uint32_t low = UINT32_MAX, high = 0;
    for (int i = 0; i < 1000; ++i) {
        const uint32_t d = policy.next_delay_ms(ConnectFailure::network);
        low = d < low ? d : low;
        high = d > high ? d : high;
    }
    EXPECT_GE(low, 5000u);
    EXPECT_LE(high, 15000u);
    EXPECT_LT(low, 6000u);   // the whole range is used: a fleet spreads out
    EXPECT_GT(high, 14000u);
    EXPECT_EQ(policy.refusals(), 0u);
}

TEST(ReconnectPolicy, RefusalsDoubleUpToTheCeiling) {
    // random() = 0 gives the fixed half of each step, UINT32_MAX-ish the whole step.
    uint32_t zero = 0;
    ReconnectPolicyConfig c;
    c.refused_first_ms = 30000;
    c.refused_max_ms = 3600000;
    ReconnectPolicy low(c, &fixed, &zero);
    const uint32_t expected_low[] = {15000, 30000, 60000, 120000, 240000, 480000, 960000, 1800000, 1800000};
    for (uint32_t e : expected_low) {
        EXPECT_EQ(low.next_delay_ms(ConnectFailure::refused), e);
    }
    EXPECT_EQ(low.refusals(), 9u);
}

TEST(ReconnectPolicy, EachGapAtLeastThePreviousUntilTheCeilingWhateverTheRandomDraw) {
    for (uint32_t seed = 0; seed < 200; ++seed) {
        std::mt19937 rng(seed);
        ReconnectPolicyConfig c;
        c.refused_first_ms = 200;
        c.refused_max_ms = 3200;
        ReconnectPolicy policy(c, &mt, &rng);
        uint32_t previous = 0;
        for (int i = 0; i < 12; ++i) {
            const uint32_t d = policy.next_delay_ms(ConnectFailure::refused);
            EXPECT_LE(d, 3200u);
            if (i < 5) {  // steps 200, 400, 800, 1600, 3200: still doubling
                EXPECT_GE(d, previous) << "seed " << seed << " refusal " << i + 1;
            } else {
                EXPECT_GE(d, 1600u);  // at the ceiling: between half of it and all of it
            }
            previous = d;
        }
    }
}

TEST(ReconnectPolicy, NetworkErrorsBetweenRefusalsKeepTheShortRetryAndAConnectionResets) {
    uint32_t zero = 0;
    ReconnectPolicyConfig c;
    c.refused_first_ms = 1000;
    ReconnectPolicy policy(c, &fixed, &zero);
    EXPECT_EQ(policy.next_delay_ms(ConnectFailure::refused), 500u);
    EXPECT_EQ(policy.next_delay_ms(ConnectFailure::refused), 1000u);
    EXPECT_EQ(policy.next_delay_ms(ConnectFailure::network), 5000u);  // short, and does not reset
    EXPECT_EQ(policy.next_delay_ms(ConnectFailure::refused), 2000u);
    policy.on_connected();
    EXPECT_EQ(policy.refusals(), 0u);
    EXPECT_EQ(policy.next_delay_ms(ConnectFailure::refused), 500u);
}

TEST(ReconnectPolicy, NoOverflowAfterManyRefusals) {
    uint32_t max = UINT32_MAX;
    ReconnectPolicy policy(ReconnectPolicyConfig{}, &fixed, &max);
    uint32_t d = 0;
    for (int i = 0; i < 100000; ++i) {
        d = policy.next_delay_ms(ConnectFailure::refused);
    }
    EXPECT_LE(d, 3600000u);
    EXPECT_GE(d, 1800000u);
}

}  // namespace
}  // namespace mqota
