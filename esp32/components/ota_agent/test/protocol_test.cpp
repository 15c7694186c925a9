#include <gtest/gtest.h>

#include <string>

#include "cJSON.h"
#include "ota_agent/protocol.h"

namespace mqota {
namespace {

const std::string kSha = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

std::string update_json(const std::string& overrides_key = "", const std::string& overrides_value = "") {
    std::string fields[][2] = {{"action", "\"update\""},
                               {"updateId", "\"u_01J8Z\""},
                               {"type", "\"thermostat\""},
                               {"version", "\"1.3.0\""},
                               {"url", "\"https://mqota.example:8443/firmware/abc.bin\""},
                               {"sha256", "\"" + kSha + "\""},
                               {"size", "123456"}};
    std::string json = "{";
    bool first = true;
    for (auto& f : fields) {
        std::string value = f[1];
        if (f[0] == overrides_key) {
            if (overrides_value.empty()) continue;  // drop the field
            value = overrides_value;
        }
        json += (first ? "\"" : ",\"") + f[0] + "\":" + value;
        first = false;
    }
    return json + "}";
}

DecodeResult decode(const std::string& json, Command* c) { return decode_command(json.data(), json.size(), c); }

TEST(Topics, FollowTheDeviceIdScheme) {
    Topics t;
    ASSERT_TRUE(t.init("dev-01"));
    EXPECT_STREQ(t.command(), "devices/dev-01/command");
    EXPECT_STREQ(t.announce(), "devices/dev-01/announce");
    EXPECT_STREQ(t.status(), "devices/dev-01/status");
    EXPECT_STREQ(t.presence(), "devices/dev-01/presence");
}

TEST(Topics, RejectInvalidDeviceIds) {
    Topics t;
    EXPECT_TRUE(t.init(std::string(64, 'a').c_str()));
    for (const std::string& bad : {std::string(), std::string(".hidden"), std::string("a/b"), std::string("a+"),
                                  std::string("a#"), std::string("sp ace"), std::string(65, 'a')}) {
        EXPECT_FALSE(t.init(bad.c_str())) << bad;
    }
    EXPECT_FALSE(is_valid_device_id(nullptr));
}

TEST(DecodeCommand, DecodesAnUpdate) {
    Command c;
    const DecodeResult r = decode(update_json(), &c);
    ASSERT_EQ(r.status, DecodeStatus::ok);
    EXPECT_EQ(c.action, CommandAction::update);
    EXPECT_STREQ(c.update_id, "u_01J8Z");
    EXPECT_STREQ(c.target.type, "thermostat");
    EXPECT_STREQ(c.target.version, "1.3.0");
    EXPECT_STREQ(c.target.url, "https://mqota.example:8443/firmware/abc.bin");
    EXPECT_EQ(c.target.size, 123456u);
    EXPECT_EQ(c.target.sha256[0], 0x00);
    EXPECT_EQ(c.target.sha256[1], 0x11);
    EXPECT_EQ(c.target.sha256[31], 0xff) << "upper-case hex is accepted";
}

TEST(DecodeCommand, IgnoresUnknownFields) {
    Command c;
    std::string json = update_json();
    json.insert(1, "\"rollout\":{\"id\":7},");
    EXPECT_EQ(decode(json, &c).status, DecodeStatus::ok);
}

TEST(DecodeCommand, DecodesNoneAndCancel) {
    Command c;
    ASSERT_EQ(decode(R"({"action":"none","reason":"up-to-date"})", &c).status, DecodeStatus::ok);
    EXPECT_EQ(c.action, CommandAction::none);
    EXPECT_STREQ(c.reason, "up-to-date");
    ASSERT_EQ(decode(R"({"action":"none","reason":"invalid-announce","error":"bad version"})", &c).status, DecodeStatus::ok);
    EXPECT_STREQ(c.reason, "invalid-announce");
    EXPECT_STREQ(c.error, "bad version");
    ASSERT_EQ(decode(R"({"action":"cancel","updateId":"u_9"})", &c).status, DecodeStatus::ok);
    EXPECT_EQ(c.action, CommandAction::cancel);
    EXPECT_STREQ(c.update_id, "u_9");
    EXPECT_EQ(decode(R"({"action":"cancel"})", &c).status, DecodeStatus::bad_field);
}

TEST(DecodeCommand, RejectsMalformedPayloads) {
    Command c;
    EXPECT_EQ(decode("", &c).status, DecodeStatus::not_json);
    EXPECT_EQ(decode("{", &c).status, DecodeStatus::not_json);
    EXPECT_EQ(decode("update", &c).status, DecodeStatus::not_json);
    EXPECT_EQ(decode("[1,2]", &c).status, DecodeStatus::not_object);
    EXPECT_EQ(decode("\"update\"", &c).status, DecodeStatus::not_object);
    EXPECT_EQ(decode("{}", &c).status, DecodeStatus::bad_action);
    EXPECT_EQ(decode(R"({"action":7})", &c).status, DecodeStatus::bad_action);
    EXPECT_EQ(decode(R"({"action":"upgrade","updateId":"u1"})", &c).status, DecodeStatus::bad_action);
    const std::string big = "{\"action\":\"none\",\"reason\":\"" + std::string(kMaxPayloadBytes, 'x') + "\"}";
    EXPECT_EQ(decode(big, &c).status, DecodeStatus::too_large);
}

TEST(DecodeCommand, ParsesOnlyTheGivenLength) {
    Command c;
    const std::string json = update_json() + "garbage";
    EXPECT_EQ(decode_command(json.data(), json.size() - 7, &c).status, DecodeStatus::ok);
}

struct BadField {
    const char* key;
    std::string value;  // "" = field missing
};

class DecodeUpdateField : public ::testing::TestWithParam<BadField> {};

TEST_P(DecodeUpdateField, IsRejectedWithTheFieldNameAndTheUpdateId) {
    Command c;
    const DecodeResult r = decode(update_json(GetParam().key, GetParam().value), &c);
    EXPECT_EQ(r.status, DecodeStatus::bad_field);
    ASSERT_NE(r.field, nullptr);
    EXPECT_STREQ(r.field, GetParam().key);
    EXPECT_TRUE(r.has_update_id);
    EXPECT_STREQ(c.update_id, "u_01J8Z");
}

INSTANTIATE_TEST_SUITE_P(
    Fields, DecodeUpdateField,
    ::testing::Values(BadField{"type", ""}, BadField{"type", "\"\""}, BadField{"type", "\"thermo stat\""},
                      BadField{"type", "5"}, BadField{"version", ""}, BadField{"version", "\"" + std::string(33, '1') + "\""},
                      BadField{"url", ""}, BadField{"url", "\"http://plain.example/fw.bin\""},
                      BadField{"url", "\"https://\""}, BadField{"url", "\"https://" + std::string(250, 'a') + "\""},
                      BadField{"sha256", ""}, BadField{"sha256", "\"abc\""},
                      BadField{"sha256", "\"" + std::string(63, 'a') + "g\""}, BadField{"size", ""},
                      BadField{"size", "0"}, BadField{"size", "-5"}, BadField{"size", "1.5"},
                      BadField{"size", "\"100\""}, BadField{"size", "4294967296"}));

TEST(DecodeCommand, WithoutAValidUpdateIdNothingCanBeReported) {
    Command c;
    DecodeResult r = decode(update_json("updateId", ""), &c);
    EXPECT_EQ(r.status, DecodeStatus::bad_field);
    EXPECT_FALSE(r.has_update_id);
    r = decode(update_json("updateId", "\"has space\""), &c);
    EXPECT_FALSE(r.has_update_id);
    r = decode(update_json("updateId", "\"" + std::string(65, 'u') + "\""), &c);
    EXPECT_FALSE(r.has_update_id);
}

TEST(EncodeStatus, ADeferralCarriesRetryAfter) {
    char buf[256];
    StatusReport r{"u_1", UpdateState::deferred, -1, nullptr, nullptr, "busy"};
    r.retry_after_s = 90;
    ASSERT_GT(encode_status(r, buf, sizeof(buf)), 0u);
    EXPECT_STREQ(buf, R"({"updateId":"u_1","state":"deferred","reason":"busy","retryAfter":90})");
    EXPECT_FALSE(is_final(UpdateState::deferred));
}

TEST(EncodeStatus, RoundTripsThroughAJsonParser) {
    char buf[512];
    const StatusReport report{"u_1", UpdateState::downloading, 42, nullptr, nullptr, nullptr};
    const size_t n = encode_status(report, buf, sizeof(buf));
    ASSERT_GT(n, 0u);
    EXPECT_STREQ(buf, R"({"updateId":"u_1","state":"downloading","progress":42})");

    const StatusReport done{"u_\"quoted\"", UpdateState::rolled_back, -1, nullptr, "self-test-failed",
                            "broker not reached\nin time"};
    ASSERT_GT(encode_status(done, buf, sizeof(buf)), 0u);
    cJSON* root = cJSON_Parse(buf);
    ASSERT_NE(root, nullptr) << buf;
    EXPECT_STREQ(cJSON_GetObjectItem(root, "updateId")->valuestring, "u_\"quoted\"");
    EXPECT_STREQ(cJSON_GetObjectItem(root, "state")->valuestring, "rolled_back");
    EXPECT_STREQ(cJSON_GetObjectItem(root, "error")->valuestring, "self-test-failed");
    EXPECT_STREQ(cJSON_GetObjectItem(root, "reason")->valuestring, "broker not reached\nin time");
    EXPECT_EQ(cJSON_GetObjectItem(root, "progress"), nullptr);
    EXPECT_EQ(cJSON_GetObjectItem(root, "version"), nullptr);
    cJSON_Delete(root);
}

TEST(EncodeStatus, SucceededCarriesTheVersion) {
    char buf[256];
    const StatusReport r{"u_1", UpdateState::succeeded, -1, "1.3.0", "", ""};
    ASSERT_GT(encode_status(r, buf, sizeof(buf)), 0u);
    EXPECT_STREQ(buf, R"({"updateId":"u_1","state":"succeeded","version":"1.3.0"})");
}

TEST(EncodeStatus, FailsInsteadOfTruncating) {
    char buf[20];
    const StatusReport r{"u_1", UpdateState::accepted, -1, nullptr, nullptr, nullptr};
    EXPECT_EQ(encode_status(r, buf, sizeof(buf)), 0u);
}

TEST(EncodeAnnounce, HasTheProtocolFields) {
    char buf[512];
    const Announce a{"thermostat", "1.2.0", "esp32", "v5.5.5", 3, "ota_0"};
    ASSERT_GT(encode_announce(a, buf, sizeof(buf)), 0u);
    EXPECT_STREQ(buf, R"({"type":"thermostat","version":"1.2.0","chip":"esp32","idf":"v5.5.5","secureVersion":3,"slot":"ota_0"})");
    const Announce minimal{"thermostat", "1.2.0", nullptr, nullptr, 0, nullptr};
    ASSERT_GT(encode_announce(minimal, buf, sizeof(buf)), 0u);
    EXPECT_STREQ(buf, R"({"type":"thermostat","version":"1.2.0","secureVersion":0})");
}

TEST(EncodeAnnounce, CarriesTheHealthThePortFilledIn) {
    char buf[768];
    DeviceHealth h{};
    h.has_rssi = true;
    h.rssi = -61;
    h.has_heap = true;
    h.free_heap = 182344;
    h.min_free_heap = 150112;
    h.has_uptime = true;
    h.uptime_s = 42;
    h.reset_reason = "panic";
    h.has_partition_size = true;
    h.partition_size = 1572864;
    h.has_elf_sha256 = true;
    for (size_t i = 0; i < kSha256Bytes; ++i) {
        h.elf_sha256[i] = static_cast<uint8_t>(i);
    }
    const Announce a{"thermostat", "1.2.0", nullptr, nullptr, 0, "ota_1", &h};
    ASSERT_GT(encode_announce(a, buf, sizeof(buf)), 0u);
    EXPECT_STREQ(buf, R"({"type":"thermostat","version":"1.2.0","secureVersion":0,"slot":"ota_1","health":{"rssi":-61,"freeHeap":182344,"minFreeHeap":150112,"uptimeS":42,"resetReason":"panic","partitionSize":1572864,"elfSha256":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"}})");

    DeviceHealth only_uptime{};
    only_uptime.has_uptime = true;
    only_uptime.uptime_s = 7;
    const Announce b{"thermostat", "1.2.0", nullptr, nullptr, 0, nullptr, &only_uptime};
    ASSERT_GT(encode_announce(b, buf, sizeof(buf)), 0u);
    EXPECT_STREQ(buf, R"({"type":"thermostat","version":"1.2.0","secureVersion":0,"health":{"uptimeS":7}})");
}

TEST(UpdateState, NamesMatchTheProtocol) {
    EXPECT_STREQ(to_string(UpdateState::rolled_back), "rolled_back");
    EXPECT_TRUE(is_final(UpdateState::rejected));
    EXPECT_FALSE(is_final(UpdateState::rebooting));
}

}  // namespace
}  // namespace mqota
