// Signed commands, signed images and the image's own version string (docs/security.md), through
// UpdateAgent on the in-memory device with the Linux port's OpenSSL TrustPort: signatures are made
// here with OpenSSL the way the server and espsecure make them.
#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <time.h>

#include <memory>
#include <string>
#include <vector>

#include "cJSON.h"
#include "openssl_trust.h"
#include "ota_agent/update_agent.h"
#include "support/fake_device.h"
#include "support/test_image.h"

namespace mqota {
namespace {

using test::FakeDevice;
using test::make_test_image;
using test::sha256_hex;
using test::TestImageSpec;

constexpr const char* kCommandTopic = "devices/dev-1/command";
constexpr const char* kUrl = "https://mqota.test:8443/firmware/next.bin";

using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

Key new_p256_key() {
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr), EVP_PKEY_CTX_free);
    EVP_PKEY* key = nullptr;
    EXPECT_EQ(EVP_PKEY_keygen_init(ctx.get()), 1);
    EXPECT_EQ(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx.get(), NID_X9_62_prime256v1), 1);
    EXPECT_EQ(EVP_PKEY_keygen(ctx.get(), &key), 1);
    return Key(key, EVP_PKEY_free);
}

std::vector<uint8_t> sign_der(EVP_PKEY* key, const std::string& message) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    size_t len = 0;
    EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key), 1);
    EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const uint8_t*>(message.data()), message.size()), 1);
    std::vector<uint8_t> sig(len);
    EXPECT_EQ(EVP_DigestSign(ctx.get(), sig.data(), &len, reinterpret_cast<const uint8_t*>(message.data()), message.size()), 1);
    sig.resize(len);
    return sig;
}

std::string base64(const std::vector<uint8_t>& bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&out[0]), bytes.data(), static_cast<int>(bytes.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

void reverse_into(const uint8_t* in, size_t len, uint8_t* out) {
    for (size_t i = 0; i < len; ++i) out[i] = in[len - 1 - i];
}

// espsecure sign_data --version 2 with an ECDSA P-256 key: pad to 4096 with 0xFF, append a sector
// holding one block (magic, version 3, SHA-256, curve 2, point LE, r‖s LE, CRC) and 0xFF.
std::vector<uint8_t> sign_image(std::vector<uint8_t> image, EVP_PKEY* key) {
    image.resize((image.size() + 4095) / 4096 * 4096, 0xFF);
    const auto digest = test::sha256_of(image);
    std::vector<uint8_t> block(kSignatureBlockBytes, 0);
    block[0] = 0xE7;
    block[1] = 0x03;
    memcpy(&block[4], digest.data(), 32);
    block[36] = 2;
    uint8_t point[65];
    size_t point_len = sizeof(point);
    EXPECT_EQ(EVP_PKEY_get_octet_string_param(key, "pub", point, sizeof(point), &point_len), 1);
    reverse_into(point + 1, 32, &block[37]);
    reverse_into(point + 33, 32, &block[69]);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new(key, nullptr), EVP_PKEY_CTX_free);
    EXPECT_EQ(EVP_PKEY_sign_init(ctx.get()), 1);
    EXPECT_EQ(EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()), 1);
    uint8_t der[80];
    size_t der_len = sizeof(der);
    EXPECT_EQ(EVP_PKEY_sign(ctx.get(), der, &der_len, digest.data(), digest.size()), 1);
    const uint8_t* p = der;
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len));
    uint8_t r[32];
    uint8_t s[32];
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), r, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), s, 32);
    ECDSA_SIG_free(sig);
    reverse_into(r, 32, &block[101]);
    reverse_into(s, 32, &block[133]);
    const uint32_t crc = crc32_le(block.data(), 1196);
    for (int i = 0; i < 4; ++i) block[1196 + i] = static_cast<uint8_t>(crc >> (8 * i));
    image.insert(image.end(), block.begin(), block.end());
    image.resize(image.size() + kSignatureSectorBytes - kSignatureBlockBytes, 0xFF);
    return image;
}

// The key digest ESP-IDF trusts: SHA-256 of the block's curve id and point.
std::array<uint8_t, 32> key_digest(const std::vector<uint8_t>& signed_image) {
    const std::vector<uint8_t> part(signed_image.end() - kSignatureSectorBytes + 36, signed_image.end() - kSignatureSectorBytes + 101);
    return test::sha256_of(part);
}

std::string field(const std::string& json, const char* name) {
    cJSON* root = cJSON_Parse(json.c_str());
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(root, name);
    std::string out = cJSON_IsString(item) ? item->valuestring : "<absent>";
    cJSON_Delete(root);
    return out;
}

class TrustTest : public ::testing::Test {
protected:
    void SetUp() override {
        config.device_id = "dev-1";
        config.download_attempts = 1;
        config.trust = &trust;
        TestImageSpec spec;
        spec.version = "1.0.0";
        dev.install(make_test_image(spec));
        // The server's command key: its public half is what the device is provisioned with.
        char path[] = "/tmp/mqota-command-key-XXXXXX";
        const int fd = mkstemp(path);
        FILE* f = fdopen(fd, "w");
        PEM_write_PUBKEY(f, command_key.get());
        fclose(f);
        std::string error;
        ASSERT_TRUE(trust.load_command_key(path, &error)) << error;
        remove(path);
    }

    void start() {
        ASSERT_GE(dev.boot(), 0);
        agent = std::make_unique<UpdateAgent>(dev, config);
        ASSERT_TRUE(agent->start());
        agent->on_connected(false);
        agent->on_subscribed(true);
    }

    // An update command for `body`, signed like src/protocol/command-signature.ts unless sign = false.
    std::string command(const std::vector<uint8_t>& body, const std::string& version, const std::string& image_version = "",
                        const std::string& device = "dev-1", long long expires_in = 3600, bool sign = true,
                        EVP_PKEY* key = nullptr, const std::string& id = "u_1") {
        const std::string sha = sha256_hex(body);
        const unsigned long long expires = static_cast<unsigned long long>(time(nullptr) + expires_in);
        std::string json = R"({"action":"update","updateId":")" + id + R"(","type":"thermostat","version":")" + version + R"(","url":")" +
                           kUrl + R"(","sha256":")" + sha + R"(","size":)" + std::to_string(body.size());
        if (!image_version.empty()) json += R"(,"imageVersion":")" + image_version + "\"";
        if (sign) {
            const std::string text = "mqota-command-v1\n" + device + "\n" + id + "\nthermostat\n" + version + "\n" + image_version + "\n" +
                                     sha + "\n" + std::to_string(body.size()) + "\n" + std::to_string(expires);
            json += R"(,"deviceId":")" + device + R"(","expires":)" + std::to_string(expires) + R"(,"sig":")" +
                    base64(sign_der(key != nullptr ? key : command_key.get(), text)) + "\"";
        }
        return json + "}";
    }

    void send(const std::string& json) { agent->on_message(kCommandTopic, json.data(), json.size()); }

    void run() {
        for (int i = 0; i < 100000; ++i) {
            const uint32_t wait = agent->service();
            if (wait == UpdateAgent::kNoDeadline) return;
            dev.advance(wait);
        }
    }

    // The last status report: "state error".
    std::string last_status() {
        const auto statuses = dev.published_on("/status");
        if (statuses.empty()) return "<none>";
        const std::string& p = statuses.back().payload;
        return field(p, "state") + " " + field(p, "error");
    }

    FakeDevice dev;
    AgentConfig config;
    linux_port::OpensslTrust trust;
    Key command_key = new_p256_key();
    std::unique_ptr<UpdateAgent> agent;
};

TEST_F(TrustTest, SignedCommandIsAcceptedAndEveryForgeryRejectedWithItsReason) {
    config.require_signed_commands = true;
    TestImageSpec spec;
    spec.version = "1.1.0";
    const auto next = make_test_image(spec);
    dev.server[kUrl].body = next;
    start();

    Key stranger = new_p256_key();
    send(command(next, "1.1.0", "", "dev-1", 3600, false));
    EXPECT_EQ(last_status(), "rejected unsigned-command");
    send(command(next, "1.1.0", "", "dev-2"));
    EXPECT_EQ(last_status(), "rejected wrong-device");
    send(command(next, "1.1.0", "", "dev-1", -10));
    EXPECT_EQ(last_status(), "rejected command-expired");
    send(command(next, "1.1.0", "", "dev-1", 3600, true, stranger.get()));
    EXPECT_EQ(last_status(), "rejected command-signature-invalid");
    std::string changed = command(next, "1.1.0");
    changed.replace(changed.find("\"version\":\"1.1.0\""), 17, "\"version\":\"1.9.0\"");
    send(changed);
    EXPECT_EQ(last_status(), "rejected command-signature-invalid");
    EXPECT_EQ(agent->state(), AgentState::idle);

    send(command(next, "1.1.0"));
    EXPECT_EQ(agent->state(), AgentState::accepted);
    run();
    EXPECT_EQ(last_status(), "rebooting <absent>");
}

TEST_F(TrustTest, OnlyImagesSignedByATrustedKeyAreInstalled) {
    Key release = new_p256_key();
    Key stranger = new_p256_key();
    TestImageSpec spec;
    spec.version = "1.1.0";
    const auto plain = make_test_image(spec);
    const auto good = sign_image(plain, release.get());
    const auto trusted = key_digest(good);
    config.image_keys.digests = reinterpret_cast<const uint8_t(*)[32]>(trusted.data());
    config.image_keys.count = 1;
    start();

    auto tampered = good;
    tampered[good.size() - kSignatureSectorBytes + 120] ^= 1;  // inside r; the CRC is made to match again
    const uint32_t crc = crc32_le(&tampered[good.size() - kSignatureSectorBytes], 1196);
    for (int i = 0; i < 4; ++i) tampered[good.size() - kSignatureSectorBytes + 1196 + i] = static_cast<uint8_t>(crc >> (8 * i));

    const std::vector<std::pair<std::vector<uint8_t>, std::string>> refused = {
        {plain, "image carries no"},
        {sign_image(plain, stranger.get()), "signed only by keys this device does not trust"},
        {tampered, "signature of a trusted key does not hold"},
    };
    int n = 0;
    for (const auto& [body, why] : refused) {
        dev.server[kUrl].body = body;
        dev.clear_published();
        send(command(body, "1.1.0", "", "dev-1", 3600, true, nullptr, "u_" + std::to_string(++n)));
        run();
        EXPECT_EQ(last_status(), "failed signature-invalid") << why;
        EXPECT_NE(field(dev.published_on("/status").back().payload, "reason").find(why), std::string::npos)
            << field(dev.published_on("/status").back().payload, "reason");
        EXPECT_EQ(agent->state(), AgentState::idle);
        EXPECT_EQ(dev.reboots, 0);
    }

    dev.server[kUrl].body = good;
    send(R"({"action":"update","updateId":"u_9","type":"thermostat","version":"1.1.0","url":")" + std::string(kUrl) +
         R"(","sha256":")" + sha256_hex(good) + R"(","size":)" + std::to_string(good.size()) + "}");
    run();
    EXPECT_EQ(last_status(), "rebooting <absent>");
}

TEST_F(TrustTest, AnImageWhoseOwnVersionIsNotSemverInstallsWhenTheCommandNamesIt) {
    TestImageSpec spec;
    spec.version = "heads/idf-release/v4.4-0-gd4572";
    const auto arduino = make_test_image(spec);
    dev.server[kUrl].body = arduino;
    start();

    send(command(arduino, "2.0.4", "", "dev-1", 3600, false));  // the old command: no imageVersion
    run();
    EXPECT_EQ(last_status(), "failed invalid-image");

    dev.clear_published();
    send(command(arduino, "2.0.4", "heads/idf-release/v4.4-0-gd4572", "dev-1", 3600, false, nullptr, "u_2"));
    run();
    EXPECT_EQ(last_status(), "rebooting <absent>");
    agent.reset();
    ASSERT_GE(dev.boot(), 0);
    agent = std::make_unique<UpdateAgent>(dev, config);
    ASSERT_TRUE(agent->start());
    agent->on_connected(false);
    agent->on_subscribed(true);
    EXPECT_EQ(last_status(), "succeeded <absent>");
    EXPECT_EQ(field(dev.published_on("/status").back().payload, "version"), "heads/idf-release/v4.4-0-gd4572");
}

}  // namespace
}  // namespace mqota
