// The device side of provisioning by claim: topics, the request, decoding the answers.
#include "ota_agent/claim.h"

#include <gtest/gtest.h>

#include <string>

namespace mqota {
namespace {

TEST(Claim, TopicsAndClientId) {
    ClaimTopics t;
    ASSERT_TRUE(t.init("claim-0a1b", "esp32-a0b1c2d3e4f5"));
    EXPECT_STREQ(t.client_id(), "claim-0a1b:esp32-a0b1c2d3e4f5");
    EXPECT_STREQ(t.request(), "provision/claim-0a1b/request");
    EXPECT_STREQ(t.response(), "provision/claim-0a1b/response/esp32-a0b1c2d3e4f5");
    EXPECT_FALSE(t.init("claim/x", "dev"));
    EXPECT_FALSE(t.init("claim", "a+b"));
    EXPECT_FALSE(t.init("claim", std::string(65, 'x').c_str()));
    ASSERT_TRUE(t.init(std::string(64, 'c').c_str(), std::string(64, 'd').c_str()));  // longest ids fit
    EXPECT_EQ(std::string(t.response()).size(), 10u + 64 + 10 + 64);
}

TEST(Claim, RequestCarriesThePemEscaped) {
    char out[256];
    const size_t n = encode_claim_request("-----BEGIN CERTIFICATE REQUEST-----\nAB\"C\n-----END CERTIFICATE REQUEST-----\n", out, sizeof(out));
    ASSERT_GT(n, 0u);
    EXPECT_STREQ(out, "{\"csr\":\"-----BEGIN CERTIFICATE REQUEST-----\\nAB\\\"C\\n-----END CERTIFICATE REQUEST-----\\n\"}");
    EXPECT_EQ(encode_claim_request("0123456789", out, 10), 0u);  // does not fit
}

TEST(Claim, DecodesEachAnswer) {
    char cert[kCertificatePemMax + 1];
    const std::string issued = R"({"status":"issued","deviceId":"d1","certPem":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"})";
    ClaimAnswer a = decode_claim_answer(issued.data(), issued.size(), "d1", cert, sizeof(cert));
    EXPECT_EQ(a.status, ClaimStatus::issued);
    EXPECT_STREQ(cert, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");

    const std::string pending = R"({"status":"pending","deviceId":"d1"})";
    EXPECT_EQ(decode_claim_answer(pending.data(), pending.size(), "d1", cert, sizeof(cert)).status, ClaimStatus::pending);

    const std::string refused = R"({"status":"refused","deviceId":"d1","error":"claim-exhausted","reason":"all 2 used"})";
    a = decode_claim_answer(refused.data(), refused.size(), "d1", cert, sizeof(cert));
    EXPECT_EQ(a.status, ClaimStatus::refused);
    EXPECT_STREQ(a.error, "claim-exhausted");
    EXPECT_STREQ(a.reason, "all 2 used");
}

TEST(Claim, AnythingElseIsInvalid) {
    char cert[64];
    const std::string cases[] = {
        R"({"status":"issued","deviceId":"d2","certPem":"-----BEGIN CERTIFICATE-----x"})",  // another device
        R"({"status":"issued","deviceId":"d1"})",                                         // no certificate
        R"({"status":"issued","deviceId":"d1","certPem":"hello"})",                        // not PEM
        R"({"status":"issued","deviceId":"d1","certPem":"-----BEGIN CERTIFICATE-----\n)" + std::string(100, 'A') + R"("})",  // too large
        R"({"status":"later","deviceId":"d1"})", "[]", "not json", "",
    };
    for (const auto& c : cases) {
        EXPECT_EQ(decode_claim_answer(c.data(), c.size(), "d1", cert, sizeof(cert)).status, ClaimStatus::invalid) << c;
    }
}

}  // namespace
}  // namespace mqota
