// Every transition of UpdateAgent against an in-memory device (support/fake_device.h) whose
// otadata follows the ESP-IDF bootloader rules, so reboots, rollbacks and crashes are real.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "cJSON.h"
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
constexpr const char* kUrl = "https://mqota.test:8443/firmware/v130.bin";
constexpr const char* kEtag = "\"v130-etag\"";

std::vector<uint8_t> image(const std::string& version, size_t size, uint32_t seed, const std::string& project = "thermostat") {
    TestImageSpec spec;
    spec.project = project;
    spec.version = version;
    spec.size = size;
    spec.seed = seed;
    return make_test_image(spec);
}

// The same command with one hex digit of its sha256 changed.
std::string with_wrong_sha(std::string cmd) {
    const size_t at = cmd.find("\"sha256\":\"") + 10;
    cmd[at] = cmd[at] == '0' ? '1' : '0';
    return cmd;
}

std::string field(const std::string& json, const char* name) {
    cJSON* root = cJSON_Parse(json.c_str());
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(root, name);
    std::string out = cJSON_IsString(item) ? item->valuestring : (cJSON_IsNumber(item) ? std::to_string(item->valueint) : "<absent>");
    cJSON_Delete(root);
    return out;
}

class UpdateAgentTest : public ::testing::Test {
protected:
    void SetUp() override {
        dev.verbose = getenv("MQOTA_TEST_VERBOSE") != nullptr;
        config.device_id = "dev-1";
        config.self_test_timeout_ms = 10000;
        config.download_attempts = 3;
        config.retry_backoff_ms = 1000;
        config.retry_backoff_max_ms = 4000;
        config.offset_save_bytes = 32 * 1024;
        v120 = image("1.2.0", 8192, 1);
        v130 = image("1.3.0", 200000, 2);
        dev.install(v120);
        serve(kUrl, v130);
        power_on();
    }

    void serve(const std::string& url, const std::vector<uint8_t>& body) {
        dev.server[url].body = body;
        dev.server[url].etag = kEtag;
    }

    // Reset or power-on: the bootloader runs, then a fresh agent starts.
    void power_on() {
        agent.reset();
        ASSERT_GE(dev.boot(), 0);
        agent = std::make_unique<UpdateAgent>(dev, config);
        ASSERT_TRUE(agent->start());
    }

    void connect(bool session_present = false) {
        const size_t subs = dev.subscriptions.size();
        agent->on_connected(session_present);
        if (dev.subscriptions.size() > subs) {
            agent->on_subscribed(true);
        }
    }

    void send(const std::string& json) { agent->on_message(kCommandTopic, json.data(), json.size()); }

    std::string update_command(const std::string& id = "u_1", const std::string& version = "1.3.0",
                               const std::vector<uint8_t>* body = nullptr, const std::string& url = kUrl,
                               const std::string& type = "thermostat") {
        const auto& img = body != nullptr ? *body : v130;
        return R"({"action":"update","updateId":")" + id + R"(","type":")" + type + R"(","version":")" + version +
               R"(","url":")" + url + R"(","sha256":")" + sha256_hex(img) + R"(","size":)" +
               std::to_string(img.size()) + "}";
    }

    // Calls service() as a port would, letting the clock run through every wait, until the agent
    // only waits for events (or max_steps). Never use while an image is being verified: time
    // passing there is the self-test deadline.
    void run(int max_steps = 100000) {
        for (int i = 0; i < max_steps; ++i) {
            const uint32_t wait = agent->service();
            if (wait == UpdateAgent::kNoDeadline) {
                return;
            }
            dev.advance(wait);
        }
    }

    void run_until(AgentState state, int max_steps = 100000) {
        for (int i = 0; i < max_steps && agent->state() != state; ++i) {
            const uint32_t wait = agent->service();
            if (wait != UpdateAgent::kNoDeadline) {
                dev.advance(wait);
            }
        }
        ASSERT_EQ(agent->state(), state);
    }

    std::vector<std::string> states() const {
        std::vector<std::string> out;
        for (const auto& s : dev.statuses()) {
            out.push_back(s.substr(0, s.find(':')));
        }
        return out;
    }

    int count(const std::string& state) const {
        const auto s = states();
        return static_cast<int>(std::count(s.begin(), s.end(), state));
    }

    std::string last_status() const {
        const auto p = dev.published_on("/status");
        return p.empty() ? "" : p.back().payload;
    }

    std::string last_announce() const {
        const auto p = dev.published_on("/announce");
        return p.empty() ? "" : p.back().payload;
    }

    bool logged(const std::string& text) const {
        return std::any_of(dev.logs.begin(), dev.logs.end(), [&](const std::string& l) { return l.find(text) != std::string::npos; });
    }

    // Runs an accepted update to the reboot into the new image.
    void update_to_reboot() {
        connect();
        send(update_command());
        run();
        ASSERT_EQ(agent->state(), AgentState::rebooting);
        ASSERT_EQ(dev.reboots, 1);
    }

    FakeDevice dev;
    AgentConfig config;
    std::unique_ptr<UpdateAgent> agent;
    std::vector<uint8_t> v120;
    std::vector<uint8_t> v130;
};

// ---- connection and announce

TEST_F(UpdateAgentTest, SubscribesThenAnnouncesOnANewSession) {
    agent->on_connected(false);
    ASSERT_EQ(dev.subscriptions, std::vector<std::string>{kCommandTopic});
    EXPECT_TRUE(dev.published_on("/announce").empty()) << "announce waits for the SUBACK";
    agent->on_subscribed(true);
    const auto announces = dev.published_on("/announce");
    ASSERT_EQ(announces.size(), 1u);
    EXPECT_EQ(announces[0].topic, "devices/dev-1/announce");
    EXPECT_EQ(announces[0].payload,
              R"({"type":"thermostat","version":"1.2.0","chip":"esp32","idf":"v5.5.5","secureVersion":0,"slot":"ota_0"})");
}

TEST_F(UpdateAgentTest, AnnouncesAtOnceWhenTheSessionIsPresent) {
    agent->on_connected(true);
    EXPECT_TRUE(dev.subscriptions.empty());
    EXPECT_EQ(dev.published_on("/announce").size(), 1u);
}

TEST_F(UpdateAgentTest, ResubscribesOnEveryConnectionWithoutSession) {
    connect(false);
    agent->on_disconnected();
    connect(true);
    agent->on_disconnected();
    connect(false);
    EXPECT_EQ(dev.subscriptions.size(), 2u);
    EXPECT_EQ(dev.published_on("/announce").size(), 3u);
}

TEST_F(UpdateAgentTest, RefusedSubscriptionIsLoggedAndStillAnnounced) {
    agent->on_connected(false);
    agent->on_subscribed(false);
    EXPECT_TRUE(logged("refused the subscription"));
    EXPECT_EQ(dev.published_on("/announce").size(), 1u);
}

TEST_F(UpdateAgentTest, IgnoresMessagesOnOtherTopics) {
    connect();
    const std::string cmd = update_command();
    agent->on_message("devices/other/command", cmd.data(), cmd.size());
    EXPECT_EQ(agent->state(), AgentState::idle);
    EXPECT_TRUE(dev.published_on("/status").empty());
}

TEST_F(UpdateAgentTest, RefusesAnInvalidDeviceId) {
    config.device_id = "bad/id";
    UpdateAgent bad(dev, config);
    EXPECT_FALSE(bad.start());
    EXPECT_EQ(bad.state(), AgentState::halted);
}

// ---- the whole update

TEST_F(UpdateAgentTest, UpdatesRebootsConfirmsAndReportsSuccess) {
    update_to_reboot();
    const auto s = states();
    ASSERT_GE(s.size(), 5u);
    EXPECT_EQ(s.front(), "accepted");
    EXPECT_EQ(s[s.size() - 2], "downloaded");
    EXPECT_EQ(s.back(), "rebooting");
    EXPECT_EQ(dev.slot(1), v130);
    EXPECT_EQ(dev.slot_state(1), SlotState::new_image);
    EXPECT_EQ(agent->record().phase, RecordPhase::flashed);

    dev.clear_published();
    power_on();
    EXPECT_EQ(agent->state(), AgentState::verifying_image);
    EXPECT_EQ(dev.running_slot(), 1);
    EXPECT_EQ(dev.slot_state(1), SlotState::pending_verify);
    connect();
    EXPECT_EQ(dev.slot_state(1), SlotState::valid);
    EXPECT_EQ(agent->state(), AgentState::idle);
    ASSERT_EQ(dev.statuses(), std::vector<std::string>{"succeeded"});
    EXPECT_EQ(field(last_status(), "updateId"), "u_1");
    EXPECT_EQ(field(last_status(), "version"), "1.3.0");
    EXPECT_EQ(field(last_announce(), "version"), "1.3.0");
    EXPECT_EQ(field(last_announce(), "slot"), "ota_1");
    // The status goes out before the announce (docs/protocol.md lifecycle step 3).
    EXPECT_NE(dev.published.front().topic.find("/status"), std::string::npos);
}

TEST_F(UpdateAgentTest, ProgressIsThrottledToTenPercentSteps) {
    update_to_reboot();
    std::vector<int> progress;
    for (const auto& s : dev.statuses()) {
        if (s.rfind("downloading:", 0) == 0) progress.push_back(std::stoi(s.substr(12)));
    }
    ASSERT_GE(progress.size(), 2u);
    EXPECT_EQ(progress.front(), 0);
    EXPECT_EQ(progress.back(), 100);
    EXPECT_LE(progress.size(), 11u);
    for (size_t i = 1; i < progress.size(); ++i) {
        EXPECT_GE(progress[i] / 10, progress[i - 1] / 10 + 1) << "one report per 10 % step";
    }
}

TEST_F(UpdateAgentTest, UpdateToAPrereleaseOfTheNextVersionIsAccepted) {
    const auto rc = image("1.2.1-rc.1", 4096, 3);
    serve("https://mqota.test/rc.bin", rc);
    connect();
    send(update_command("u_rc", "1.2.1-rc.1", &rc, "https://mqota.test/rc.bin"));
    run();
    EXPECT_EQ(agent->state(), AgentState::rebooting);
}

// ---- duplicates

TEST_F(UpdateAgentTest, DuplicateOfTheUpdateInProgressIsIgnored) {
    connect();
    send(update_command());
    agent->service();  // open
    agent->service();  // first chunk
    ASSERT_EQ(agent->state(), AgentState::downloading);
    send(update_command());  // QoS 1 redelivery
    run();
    EXPECT_EQ(count("accepted"), 1);
    EXPECT_EQ(count("rejected"), 0);
    EXPECT_EQ(dev.requests_for(kUrl), 1);
    EXPECT_EQ(agent->state(), AgentState::rebooting);
    EXPECT_TRUE(logged("duplicate"));
}

TEST_F(UpdateAgentTest, DuplicateOfAFinishedUpdateReportsItsOutcomeAgain) {
    update_to_reboot();
    power_on();
    connect();
    dev.clear_published();
    send(update_command());
    EXPECT_EQ(dev.statuses(), std::vector<std::string>{"succeeded"});
    EXPECT_EQ(field(last_status(), "version"), "1.3.0");
    EXPECT_EQ(dev.requests_for(kUrl), 1) << "no second download";
}

// ---- deferral by the application (docs/protocol.md "Deferral")

TEST_F(UpdateAgentTest, TheApplicationDefersAnOfferAndTakesTheSameUpdateWhenOfferedAgain) {
    dev.defer_offers = 1;
    dev.defer_reason = "battery at 12 %";
    connect();
    send(update_command());
    EXPECT_EQ(agent->state(), AgentState::idle);
    EXPECT_EQ(dev.statuses(), std::vector<std::string>{"deferred"});
    EXPECT_EQ(field(last_status(), "updateId"), "u_1");
    EXPECT_EQ(field(last_status(), "retryAfter"), "30");
    EXPECT_EQ(field(last_status(), "reason"), "battery at 12 %");
    EXPECT_EQ(dev.deferred_versions, std::vector<std::string>{"1.3.0"});
    EXPECT_EQ(dev.requests_for(kUrl), 0) << "nothing downloaded";
    EXPECT_EQ(agent->record().phase, RecordPhase::none) << "nothing stored";

    send(update_command());  // the server's offer after retryAfter: the same update
    run();
    EXPECT_EQ(agent->state(), AgentState::rebooting);
    EXPECT_EQ(count("deferred"), 1);
    EXPECT_EQ(count("accepted"), 1);
}

TEST_F(UpdateAgentTest, ADeferralAsksForAtLeastOneSecondAndAtMostADay) {
    dev.defer_offers = 2;
    dev.defer_retry_after_s = 0;
    connect();
    send(update_command());
    EXPECT_EQ(field(last_status(), "retryAfter"), "1");
    dev.defer_retry_after_s = 10 * kRetryAfterMaxS;
    send(update_command());
    EXPECT_EQ(field(last_status(), "retryAfter"), std::to_string(kRetryAfterMaxS));
    EXPECT_EQ(field(last_status(), "reason"), "<absent>");
}

TEST_F(UpdateAgentTest, AnInvalidOfferIsRejectedBeforeTheApplicationIsAsked) {
    dev.defer_offers = 1;
    connect();
    send(update_command("u_old", "1.1.0"));
    EXPECT_EQ(dev.statuses(), std::vector<std::string>{"rejected"});
    EXPECT_TRUE(dev.deferred_versions.empty());
}

TEST_F(UpdateAgentTest, AnotherUpdateWhileBusyIsRejected) {
    connect();
    send(update_command("u_1"));
    agent->service();
    send(update_command("u_2"));
    EXPECT_EQ(field(last_status(), "updateId"), "u_2");
    EXPECT_EQ(field(last_status(), "state"), "rejected");
    EXPECT_EQ(field(last_status(), "error"), "busy");
    run();
    EXPECT_EQ(agent->state(), AgentState::rebooting);
}

// ---- rejections

struct Rejection {
    const char* name;
    std::string command;
    const char* error;
};

TEST_F(UpdateAgentTest, RejectsWrongTypeDowngradeSameVersionOversizeAndBadCommands) {
    connect();
    const std::string sha = sha256_hex(v130);
    const auto cmd = [&](const std::string& id, const std::string& type, const std::string& version, const std::string& size) {
        return R"({"action":"update","updateId":")" + id + R"(","type":")" + type + R"(","version":")" + version +
               R"(","url":")" + kUrl + R"(","sha256":")" + sha + R"(","size":)" + size + "}";
    };
    const Rejection cases[] = {
        {"wrong type", cmd("r1", "doorbell", "1.3.0", "200000"), "wrong-type"},
        {"downgrade", cmd("r2", "thermostat", "1.1.9", "200000"), "not-newer"},
        {"same version", cmd("r3", "thermostat", "v1.2.0", "200000"), "not-newer"},
        {"pre-release of the running version", cmd("r4", "thermostat", "1.2.0-rc.9", "200000"), "not-newer"},
        {"same version, other build", cmd("r5", "thermostat", "1.2.0+build.7", "200000"), "not-newer"},
        {"oversize", cmd("r6", "thermostat", "1.3.0", std::to_string(FakeDevice::kSlotSize + 1)), "too-large"},
        {"not semver", cmd("r7", "thermostat", "1.3", "200000"), "invalid-command"},
        {"smaller than a header", cmd("r8", "thermostat", "1.3.0", "100"), "invalid-command"},
        {"unparseable field", R"({"action":"update","updateId":"r9","type":"thermostat"})", "invalid-command"},
        {"unknown action", R"({"action":"upgrade","updateId":"r10"})", "invalid-command"},
    };
    for (const auto& c : cases) {
        dev.clear_published();
        send(c.command);
        ASSERT_EQ(dev.statuses(), std::vector<std::string>{"rejected"}) << c.name;
        EXPECT_EQ(field(last_status(), "error"), c.error) << c.name;
        EXPECT_NE(field(last_status(), "reason"), "<absent>") << c.name;
        EXPECT_EQ(agent->state(), AgentState::idle) << c.name;
    }
    EXPECT_EQ(dev.requests_for(kUrl), 0);
    EXPECT_EQ(agent->record().phase, RecordPhase::none) << "a rejection stores nothing";
}

TEST_F(UpdateAgentTest, CommandsThatCannotBeAttributedAreOnlyLogged) {
    connect();
    dev.clear_published();
    for (const char* bad : {"not json", "[]", "{\"action\":\"update\"}", "{\"action\":\"update\",\"updateId\":\"\"}"}) {
        send(bad);
    }
    EXPECT_TRUE(dev.published.empty());
    EXPECT_TRUE(logged("cannot parse command"));
}

TEST_F(UpdateAgentTest, DeviceTypeOverrideDecidesWhatIsAccepted) {
    config.device_type = "thermostat-pro";
    power_on();
    connect();
    send(update_command());
    EXPECT_EQ(field(last_status(), "error"), "wrong-type");
    EXPECT_EQ(field(last_announce(), "type"), "thermostat-pro");
}

// ---- image header checks (before anything is written)

TEST_F(UpdateAgentTest, FailureIsReportedEvenWithHostileTextInTheImageHeader) {
    TestImageSpec spec;
    spec.version = std::string(32, '\x01');  // every byte escapes to \u0001 in JSON
    const auto body = make_test_image(spec);
    serve("https://mqota.test/hostile.bin", body);
    connect();
    send(update_command("u_h", "1.3.0", &body, "https://mqota.test/hostile.bin"));
    run();
    EXPECT_EQ(states(), (std::vector<std::string>{"accepted", "failed"}));
    EXPECT_EQ(field(last_status(), "error"), "invalid-image");
}

TEST_F(UpdateAgentTest, ImageHeaderIsCheckedBeforeWriting) {
    struct Case {
        const char* name;
        TestImageSpec spec;
        uint32_t efuse;
        const char* error;
    };
    TestImageSpec other_project;
    other_project.project = "doorbell";
    other_project.version = "1.3.0";
    TestImageSpec other_version;
    other_version.version = "1.4.0";
    TestImageSpec other_chip;
    other_chip.version = "1.3.0";
    other_chip.chip_id = 0x0005;
    TestImageSpec old_secure;
    old_secure.version = "1.3.0";
    old_secure.secure_version = 1;
    const Case cases[] = {
        {"project name", other_project, 0, "wrong-type"},
        {"version differs from the command", other_version, 0, "version-mismatch"},
        {"chip", other_chip, 0, "chip-mismatch"},
        {"secure version below eFuse", old_secure, 2, "secure-version"},
    };
    connect();
    int n = 0;
    for (const auto& c : cases) {
        const std::string url = "https://mqota.test/h" + std::to_string(n) + ".bin";
        const auto body = make_test_image(c.spec);
        serve(url, body);
        dev.efuse_secure_version = c.efuse;
        dev.clear_published();
        send(update_command("h" + std::to_string(n++), "1.3.0", &body, url));
        run();
        EXPECT_EQ(states(), (std::vector<std::string>{"accepted", "failed"})) << c.name;
        EXPECT_EQ(field(last_status(), "error"), c.error) << c.name;
        EXPECT_EQ(dev.reboots, 0) << c.name;
        EXPECT_EQ(dev.slot_state(1), SlotState::undefined) << c.name << ": boot slot untouched";
    }
}

// ---- integrity

TEST_F(UpdateAgentTest, Sha256MismatchFailsAndKeepsTheBootSlot) {
    connect();
    const std::string cmd = with_wrong_sha(update_command());
    send(cmd);
    run();
    EXPECT_EQ(states().back(), "failed");
    EXPECT_EQ(field(last_status(), "error"), "sha256-mismatch");
    EXPECT_EQ(count("downloaded"), 0);
    EXPECT_EQ(dev.reboots, 0);
    EXPECT_EQ(dev.slot_state(1), SlotState::undefined);
    EXPECT_EQ(agent->state(), AgentState::idle);
    // A redelivery of the same command gets the same answer, without a new download.
    dev.clear_published();
    send(cmd);
    EXPECT_EQ(dev.statuses(), std::vector<std::string>{"failed"});
    EXPECT_EQ(dev.requests_for(kUrl), 1);
}

TEST_F(UpdateAgentTest, ServerSendingTooManyBytesFails) {
    connect();
    auto longer = v130;
    longer.resize(v130.size() + 5000, 0xAA);
    dev.server[kUrl].body = longer;
    send(update_command());  // announces v130's size
    run();
    EXPECT_EQ(field(last_status(), "error"), "size-mismatch");
    EXPECT_EQ(dev.reboots, 0);
}

// ---- interrupted downloads

TEST_F(UpdateAgentTest, InterruptedDownloadResumesWithRangeAndTheSameEtag) {
    dev.server[kUrl].drop_after[0] = 50000;
    update_to_reboot();
    ASSERT_EQ(dev.range_requests.size(), 1u);
    EXPECT_EQ(dev.range_requests[0], std::string("bytes=50000- If-Range:") + kEtag);
    EXPECT_EQ(dev.requests_for(kUrl), 2);
    EXPECT_EQ(dev.slot(1), v130);
    EXPECT_EQ(count("failed"), 0);
    EXPECT_TRUE(logged("resuming at byte 50000"));
}

TEST_F(UpdateAgentTest, RetriesBackOffExponentially) {
    dev.server[kUrl].drop_after[0] = 1000;
    dev.server[kUrl].drop_after[1] = 1000;
    const uint64_t start = dev.now_ms();
    update_to_reboot();
    EXPECT_GE(dev.now_ms() - start, 1000u + 2000u);
    EXPECT_EQ(dev.requests_for(kUrl), 3);
}

TEST_F(UpdateAgentTest, ChangedRepresentationRestartsFromZero) {
    dev.server[kUrl].drop_after[0] = 50000;
    connect();
    send(update_command());
    run_until(AgentState::retry_wait);
    dev.server[kUrl].etag = "\"another\"";  // If-Range no longer matches: server sends 200
    run();
    ASSERT_EQ(agent->state(), AgentState::rebooting);
    EXPECT_EQ(dev.slot(1), v130);
    EXPECT_TRUE(logged("restarting from zero"));
}

TEST_F(UpdateAgentTest, PartialContentWithAnotherEtagIsNotTrusted) {
    // The first attempt gets other bytes under the same URL (head differs, tail identical); then
    // the server changes to the real image and answers the resume with 206 despite If-Range.
    // Splicing would give other's head + v130's tail: a corrupt image.
    auto other = image("1.3.0", v130.size(), 99);
    std::copy(v130.begin() + 50000, v130.end(), other.begin() + 50000);
    dev.server[kUrl].body = other;
    dev.server[kUrl].drop_after[0] = 50000;
    dev.server[kUrl].honours_if_range = false;
    connect();
    send(update_command());
    run_until(AgentState::retry_wait);
    dev.server[kUrl].body = v130;
    dev.server[kUrl].etag = "\"changed\"";
    run();
    ASSERT_EQ(agent->state(), AgentState::rebooting);
    EXPECT_TRUE(logged("resume not trusted"));
    EXPECT_EQ(dev.requests_for(kUrl), 3) << "interrupted, distrusted 206, fresh 200";
    EXPECT_EQ(dev.range_requests.size(), 1u) << "the fresh request has no Range";
    EXPECT_EQ(dev.slot(1), v130);
}

TEST_F(UpdateAgentTest, ServerIgnoringRangeRestartsFromZeroWithoutCorruption) {
    dev.server[kUrl].drop_after[0] = 50000;
    dev.server[kUrl].honours_range = false;
    update_to_reboot();
    EXPECT_EQ(dev.slot(1), v130);
    EXPECT_TRUE(logged("server sent the whole image (HTTP 200)"));
}

TEST_F(UpdateAgentTest, NoStrongEtagMeansNoResume) {
    dev.server[kUrl].drop_after[0] = 50000;
    dev.server[kUrl].etag = "W/\"weak\"";
    update_to_reboot();
    EXPECT_TRUE(dev.range_requests.empty());
    EXPECT_EQ(dev.slot(1), v130);
}

TEST_F(UpdateAgentTest, GivesUpAfterTheConfiguredAttempts) {
    for (int i = 0; i < 5; ++i) dev.server[kUrl].drop_after[i] = 1000;
    connect();
    send(update_command());
    run();
    EXPECT_EQ(agent->state(), AgentState::idle);
    EXPECT_EQ(dev.requests_for(kUrl), 3);
    EXPECT_EQ(states().back(), "failed");
    EXPECT_EQ(field(last_status(), "error"), "download-failed");
    EXPECT_NE(field(last_status(), "reason").find("3 attempts"), std::string::npos);
}

TEST_F(UpdateAgentTest, ClientErrorFailsWithoutRetrying) {
    dev.server[kUrl].status = 404;
    connect();
    send(update_command());
    run();
    EXPECT_EQ(dev.requests_for(kUrl), 1);
    EXPECT_EQ(field(last_status(), "error"), "download-failed");
}

TEST_F(UpdateAgentTest, ServerErrorIsRetried) {
    dev.server[kUrl].status = 503;
    connect();
    send(update_command());
    run();
    EXPECT_EQ(dev.requests_for(kUrl), 3);
    EXPECT_EQ(field(last_status(), "error"), "download-failed");
}

TEST_F(UpdateAgentTest, PowerLossMidDownloadResumesFromTheSavedOffset) {
    connect();
    send(update_command());
    for (int i = 0; i < 6; ++i) agent->service();  // open + 5 chunks of 16 KiB
    ASSERT_EQ(agent->state(), AgentState::downloading);
    // Power loss: no shutdown, nothing saved beyond the periodic offset.
    power_on();
    EXPECT_EQ(agent->boot_outcome(), BootOutcome::resumable_download);
    EXPECT_EQ(agent->record().offset, 65536u) << "saved every 32 KiB";
    dev.clear_published();
    connect(true);
    send(update_command());  // the server answers the announce with the same command
    run();
    ASSERT_EQ(agent->state(), AgentState::rebooting);
    EXPECT_EQ(count("accepted"), 0) << "same update, already accepted before the power loss";
    ASSERT_EQ(dev.range_requests.size(), 1u);
    EXPECT_EQ(dev.range_requests[0].rfind("bytes=65536-", 0), 0u);
    EXPECT_EQ(dev.slot(1), v130);
}

TEST_F(UpdateAgentTest, ShutdownSavesTheExactOffset) {
    connect();
    send(update_command());
    for (int i = 0; i < 4; ++i) agent->service();
    agent->shutdown();
    power_on();
    EXPECT_EQ(agent->record().offset, 3u * FakeDevice::kChunk);
}

// ---- cancel and none

TEST_F(UpdateAgentTest, CancelBeforeTheDownloadStartsDropsTheUpdate) {
    connect();
    send(update_command());
    send(R"({"action":"cancel","updateId":"u_1"})");
    run();
    EXPECT_EQ(agent->state(), AgentState::idle);
    EXPECT_EQ(dev.requests_for(kUrl), 0);
    EXPECT_EQ(agent->record().phase, RecordPhase::none);
    EXPECT_EQ(states(), std::vector<std::string>{"accepted"});
}

TEST_F(UpdateAgentTest, CancelWhileWaitingForTheFirstSuccessfulConnectionDropsTheUpdate) {
    dev.server[kUrl].status = 503;
    connect();
    send(update_command());
    run_until(AgentState::retry_wait);
    send(R"({"action":"cancel","updateId":"u_1"})");
    EXPECT_EQ(agent->state(), AgentState::idle);
}

TEST_F(UpdateAgentTest, CancelAfterTheDownloadStartedIsIgnored) {
    connect();
    send(update_command());
    agent->service();
    send(R"({"action":"cancel","updateId":"u_1"})");
    run();
    EXPECT_EQ(agent->state(), AgentState::rebooting);
    EXPECT_TRUE(logged("its download has started"));
}

TEST_F(UpdateAgentTest, CancelDuringARetryAfterBytesArrivedIsIgnored) {
    dev.server[kUrl].drop_after[0] = 50000;
    connect();
    send(update_command());
    run_until(AgentState::retry_wait);
    send(R"({"action":"cancel","updateId":"u_1"})");
    EXPECT_EQ(agent->state(), AgentState::retry_wait);
    run();
    EXPECT_EQ(agent->state(), AgentState::rebooting);
}

TEST_F(UpdateAgentTest, CancelOfAnInterruptedDownloadForgetsIt) {
    connect();
    send(update_command());
    for (int i = 0; i < 6; ++i) agent->service();
    power_on();
    connect(true);
    send(R"({"action":"cancel","updateId":"u_1"})");
    EXPECT_EQ(agent->record().phase, RecordPhase::none);
}

TEST_F(UpdateAgentTest, NoneIsLoggedOnly) {
    connect();
    dev.clear_published();
    send(R"({"action":"none","reason":"up-to-date"})");
    EXPECT_TRUE(dev.published.empty());
    EXPECT_TRUE(logged("no update offered (up-to-date)"));
    send(R"({"action":"none","reason":"invalid-announce","error":"version: not a semantic version"})");
    EXPECT_TRUE(logged("no update offered (invalid-announce): version: not a semantic version"));
}

// ---- first boot of the new image

TEST_F(UpdateAgentTest, CrashBetweenFlashAndConfirmRollsBack) {
    update_to_reboot();
    power_on();  // new image boots PENDING_VERIFY ...
    ASSERT_EQ(agent->state(), AgentState::verifying_image);
    power_on();  // ... and resets before confirming: the bootloader marks it ABORTED
    EXPECT_EQ(dev.running_slot(), 0);
    EXPECT_EQ(dev.slot_state(1), SlotState::aborted);
    EXPECT_EQ(agent->boot_outcome(), BootOutcome::rolled_back);
    dev.clear_published();
    connect();
    ASSERT_EQ(dev.statuses(), std::vector<std::string>{"rolled_back"});
    EXPECT_EQ(field(last_status(), "updateId"), "u_1");
    EXPECT_EQ(field(last_status(), "error"), "not-confirmed");
    EXPECT_EQ(field(last_announce(), "version"), "1.2.0");
    EXPECT_EQ(field(last_announce(), "slot"), "ota_0");

    // The same command again: the outcome, not a second attempt.
    dev.clear_published();
    send(update_command());
    EXPECT_EQ(dev.statuses(), std::vector<std::string>{"rolled_back"});
    // A new update of the version that failed here is refused up front.
    send(update_command("u_2"));
    EXPECT_EQ(field(last_status(), "error"), "previously-rolled-back");
}

TEST_F(UpdateAgentTest, SelfTestTimeoutRollsBack) {
    update_to_reboot();
    power_on();
    ASSERT_EQ(agent->state(), AgentState::verifying_image);
    const uint32_t wait = agent->service();
    EXPECT_EQ(wait, config.self_test_timeout_ms);
    dev.advance(wait);
    agent->service();  // deadline: never reached the broker
    EXPECT_EQ(agent->state(), AgentState::rebooting);
    EXPECT_EQ(dev.reboots, 2);
    EXPECT_EQ(dev.slot_state(1), SlotState::invalid);
    power_on();
    EXPECT_EQ(dev.running_slot(), 0);
    connect();
    EXPECT_EQ(field(last_status(), "state"), "rolled_back");
    EXPECT_EQ(field(last_status(), "error"), "self-test-failed");
    EXPECT_EQ(field(last_status(), "reason"), "broker not reached within 10000 ms");
}

TEST_F(UpdateAgentTest, ConnectingAfterTheDeadlineFailsTheSelfTest) {
    update_to_reboot();
    power_on();
    dev.advance(config.self_test_timeout_ms + 1);
    agent->on_connected(false);
    EXPECT_EQ(agent->state(), AgentState::rebooting);
    EXPECT_TRUE(dev.subscriptions.empty());
}

TEST_F(UpdateAgentTest, FailingApplicationSelfTestRollsBackAtOnce) {
    update_to_reboot();
    dev.app_self_test_ok = false;
    power_on();
    EXPECT_EQ(agent->state(), AgentState::rebooting);
    dev.app_self_test_ok = true;
    power_on();
    connect();
    EXPECT_EQ(field(last_status(), "state"), "rolled_back");
    EXPECT_EQ(field(last_status(), "reason"), "application self-test failed");
}

TEST_F(UpdateAgentTest, CommandsWaitUntilTheNewImageIsConfirmed) {
    update_to_reboot();
    power_on();
    send(update_command("u_2", "1.4.0"));
    EXPECT_TRUE(logged("command ignored in state verifying_image"));
}

TEST_F(UpdateAgentTest, ResetBetweenSetBootAndSavingTheRecordStillReportsSuccess) {
    update_to_reboot();
    // Rewind the stored record to `downloading`, as if power failed right after set-boot.
    uint8_t buf[kUpdateRecordMaxBytes];
    size_t len = 0;
    ASSERT_TRUE(dev.kv_read(kUpdateRecordKey, buf, sizeof(buf), &len));
    UpdateRecord r{};
    ASSERT_TRUE(decode_update_record(buf, len, &r));
    r.phase = RecordPhase::downloading;
    len = encode_update_record(r, buf, sizeof(buf));
    ASSERT_TRUE(dev.kv_write(kUpdateRecordKey, buf, len));
    dev.clear_published();
    power_on();
    connect();
    EXPECT_EQ(dev.statuses(), std::vector<std::string>{"succeeded"});
}

// ---- reporting while offline

TEST_F(UpdateAgentTest, ProgressIsNotQueuedWhileOffline) {
    connect();
    send(update_command());
    agent->on_disconnected();
    run();
    EXPECT_EQ(states(), std::vector<std::string>{"accepted"});
    EXPECT_EQ(agent->state(), AgentState::rebooting);
}

TEST_F(UpdateAgentTest, FinalOutcomeIsSentOnTheNextConnection) {
    connect();
    send(with_wrong_sha(update_command()));
    agent->on_disconnected();
    run();
    EXPECT_EQ(states(), std::vector<std::string>{"accepted"});
    connect(true);
    EXPECT_EQ(states(), (std::vector<std::string>{"accepted", "failed"}));
    EXPECT_TRUE(agent->record().final_reported);
}

TEST_F(UpdateAgentTest, UnacknowledgedOutcomeIsSentAgainAfterAReboot) {
    update_to_reboot();
    power_on();
    dev.flush_ok = false;  // no PUBACK before the next reset
    connect();
    EXPECT_FALSE(agent->record().final_reported);
    dev.flush_ok = true;
    dev.clear_published();
    power_on();
    EXPECT_EQ(agent->boot_outcome(), BootOutcome::report_final);
    connect();
    EXPECT_EQ(dev.statuses(), std::vector<std::string>{"succeeded"});
    EXPECT_TRUE(agent->record().final_reported);
}

}  // namespace
}  // namespace mqota
