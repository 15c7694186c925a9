// The real mqota-linux-device program, end to end on this machine: a mosquitto broker with mutual
// TLS (client certificate required, identity = CN), an HTTPS image server, and this test acting
// as the mqota server over MQTT. It exercises what the unit tests cannot: libmosquitto and
// libcurl with certificates, the files in the state directory, reboot by re-exec, the
// simulation hooks and signal handling.
#include <gtest/gtest.h>
#include <mosquitto.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cJSON.h"
#include "support/https_image_server.h"
#include "support/test_image.h"
#include "support/test_pki.h"

namespace mqota::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kDeviceId = "thermo-e2e-1";

std::string find_mosquitto() {
    for (const char* p : {"/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/local/bin/mosquitto"}) {
        if (access(p, X_OK) == 0) return p;
    }
    return "";
}

int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
}

bool port_open(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    return ok;
}

pid_t spawn(const std::vector<std::string>& args, const std::string& log_file, const std::vector<std::string>& env = {}) {
    const pid_t pid = fork();
    if (pid == 0) {
        FILE* log = fopen(log_file.c_str(), "a");
        if (log != nullptr) {
            dup2(fileno(log), STDERR_FILENO);
            dup2(fileno(log), STDOUT_FILENO);
        }
        for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        // The test blocks nothing, but make sure the child starts with default signal handling.
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    return pid;
}

// Waits for the process to exit; returns its exit status, -1 on timeout, 128+n if killed by n.
int wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        const pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        std::this_thread::sleep_for(20ms);
    }
    return -1;
}

std::string json_field(const std::string& json, const char* name) {
    cJSON* root = cJSON_Parse(json.c_str());
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(root, name);
    std::string out = cJSON_IsString(item) ? item->valuestring : (cJSON_IsNumber(item) ? std::to_string(item->valueint) : "");
    cJSON_Delete(root);
    return out;
}

// The mqota server's side of the MQTT conversation, reduced to recording and sending.
class ServerStandIn {
public:
    ServerStandIn(int port, const std::string& ca, const std::string& crt, const std::string& key) {
        mosq_ = mosquitto_new("mqota-server", true, this);
        mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
        mosquitto_tls_set(mosq_, ca.c_str(), nullptr, crt.c_str(), key.c_str(), nullptr);
        mosquitto_connect_callback_set(mosq_, [](mosquitto* m, void*, int rc) {
            if (rc == 0) {
                mosquitto_subscribe(m, nullptr, "devices/+/announce", 1);
                mosquitto_subscribe(m, nullptr, "devices/+/status", 1);
            }
        });
        mosquitto_subscribe_callback_set(mosq_, [](mosquitto*, void* self, int, int, const int*) {
            auto* s = static_cast<ServerStandIn*>(self);
            std::lock_guard<std::mutex> lock(s->mutex_);
            ++s->subacks_;
            s->cv_.notify_all();
        });
        mosquitto_message_callback_set(mosq_, [](mosquitto*, void* self, const mosquitto_message* m) {
            auto* s = static_cast<ServerStandIn*>(self);
            std::lock_guard<std::mutex> lock(s->mutex_);
            s->messages_.push_back({m->topic, std::string(static_cast<const char*>(m->payload), static_cast<size_t>(m->payloadlen))});
            s->cv_.notify_all();
        });
        mosquitto_connect(mosq_, "127.0.0.1", port, 30);
        mosquitto_loop_start(mosq_);
    }
    ~ServerStandIn() {
        mosquitto_disconnect(mosq_);
        mosquitto_loop_stop(mosq_, false);
        mosquitto_destroy(mosq_);
    }

    bool ready(std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> lock(mutex_);
        return cv_.wait_for(lock, timeout, [this] { return subacks_ >= 2; });
    }

    void command(const std::string& json) {
        mosquitto_publish(mosq_, nullptr, (std::string("devices/") + kDeviceId + "/command").c_str(),
                          static_cast<int>(json.size()), json.data(), 1, false);
    }

    // Waits for a message on devices/<id>/<kind> (after `from`) matching pred; returns its index.
    int wait_for(const std::string& kind, const std::function<bool(const std::string&)>& pred,
                 std::chrono::milliseconds timeout, size_t from = 0) {
        std::unique_lock<std::mutex> lock(mutex_);
        int found = -1;
        cv_.wait_for(lock, timeout, [&] {
            for (size_t i = from; i < messages_.size(); ++i) {
                if (messages_[i].first == std::string("devices/") + kDeviceId + "/" + kind && pred(messages_[i].second)) {
                    found = static_cast<int>(i);
                    return true;
                }
            }
            return false;
        });
        return found;
    }

    int wait_status(const std::string& state, std::chrono::milliseconds timeout = 20s, size_t from = 0) {
        return wait_for("status", [&](const std::string& p) { return json_field(p, "state") == state; }, timeout, from);
    }

    int wait_announce(const std::string& version, std::chrono::milliseconds timeout = 20s, size_t from = 0) {
        return wait_for("announce", [&](const std::string& p) { return json_field(p, "version") == version; }, timeout, from);
    }

    std::vector<std::string> states() {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<std::string> out;
        for (const auto& m : messages_) {
            if (m.first.find("/status") != std::string::npos) out.push_back(json_field(m.second, "state"));
        }
        return out;
    }

    std::string message(int i) {
        std::lock_guard<std::mutex> lock(mutex_);
        return messages_.at(static_cast<size_t>(i)).second;
    }

    size_t count() {
        std::lock_guard<std::mutex> lock(mutex_);
        return messages_.size();
    }

private:
    mosquitto* mosq_ = nullptr;
    std::mutex mutex_;
    std::condition_variable cv_;
    int subacks_ = 0;
    std::vector<std::pair<std::string, std::string>> messages_;
};

class LinuxDeviceE2E : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        signal(SIGPIPE, SIG_IGN);  // the image server writes to devices that may go away
        mosquitto_lib_init();
    }

    void SetUp() override {
        const std::string mosquitto = find_mosquitto();
        ASSERT_FALSE(mosquitto.empty()) << "the mosquitto broker is needed (Debian package mosquitto)";
        char tmpl[] = "/tmp/mqota-e2e-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        bundle_ = dir_ + "/bundle";
        state_ = dir_ + "/state";
        mkdir(bundle_.c_str(), 0755);

        const TestPki pki = make_test_pki(dir_);
        issue_client_certificate(dir_, kDeviceId, bundle_ + "/device.crt", bundle_ + "/device.key");
        issue_client_certificate(dir_, "mqota-server", dir_ + "/server-client.crt", dir_ + "/server-client.key");
        {
            std::ifstream src(pki.server_ca_crt);
            std::ofstream dst(bundle_ + "/ca.crt");
            dst << src.rdbuf();
        }

        broker_port_ = free_port();
        std::ofstream conf(dir_ + "/mosquitto.conf");
        conf << "listener " << broker_port_ << " 127.0.0.1\n"
             << "cafile " << pki.device_ca_crt << "\n"
             << "certfile " << pki.server_crt << "\n"
             << "keyfile " << pki.server_key << "\n"
             << "require_certificate true\n"
             << "use_identity_as_username true\n"
             << "persistence false\n"
             << "log_dest stderr\n";
        // Started as root, mosquitto switches to the user `mosquitto`, which cannot read the
        // private test directory; keep the current user instead.
        if (const passwd* pw = getpwuid(geteuid())) {
            conf << "user " << pw->pw_name << "\n";
        }
        conf.close();
        broker_ = spawn({mosquitto, "-c", dir_ + "/mosquitto.conf"}, dir_ + "/mosquitto.log");
        for (int i = 0; i < 100 && !port_open(broker_port_); ++i) std::this_thread::sleep_for(50ms);
        ASSERT_TRUE(port_open(broker_port_)) << "mosquitto did not start";

        std::ofstream device_json(bundle_ + "/device.json");
        device_json << R"({"deviceId":")" << kDeviceId << R"(","type":"thermostat","brokerUrl":"mqtts://127.0.0.1:)"
                    << broker_port_ << R"("})";
        device_json.close();

        images_ = std::make_unique<HttpsImageServer>(pki.server_crt, pki.server_key);
        server_ = std::make_unique<ServerStandIn>(broker_port_, pki.server_ca_crt, dir_ + "/server-client.crt",
                                                  dir_ + "/server-client.key");
        ASSERT_TRUE(server_->ready(10s)) << "test server could not subscribe";

        v100_ = image("1.0.0", 150000, 1);
        v110_ = image("1.1.0", 400000, 2);
        write_file(dir_ + "/v100.bin", v100_);
    }

    void TearDown() override {
        stop_device();
        server_.reset();
        images_.reset();
        if (broker_ > 0) {
            kill(broker_, SIGTERM);
            wait_exit(broker_, 5s);
        }
        if (HasFailure()) {
            std::ifstream log(dir_ + "/device.log");
            std::cerr << "---- device log\n" << log.rdbuf() << "---- end of device log\n";
        }
        if (!HasFailure() && getenv("MQOTA_E2E_KEEP") == nullptr) {
            std::string cmd = "rm -rf " + dir_;
            (void)system(cmd.c_str());
        } else {
            std::cerr << "test files kept in " << dir_ << "\n";
        }
    }

    static std::vector<uint8_t> image(const std::string& version, size_t size, uint32_t seed, const std::string& marker = "") {
        TestImageSpec spec;
        spec.version = version;
        spec.size = size;
        spec.seed = seed;
        spec.marker = marker;
        return make_test_image(spec);
    }

    static void write_file(const std::string& path, const std::vector<uint8_t>& data) {
        std::ofstream f(path, std::ios::binary);
        f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    }

    void start_device(std::vector<std::string> extra = {}, std::vector<std::string> env = {}) {
        std::vector<std::string> args = {MQOTA_LINUX_DEVICE, "--bundle", bundle_, "--state", state_,
                                         "--self-test-timeout-ms", "5000", "--retry-backoff-ms", "200"};
        args.insert(args.end(), extra.begin(), extra.end());
        device_ = spawn(args, dir_ + "/device.log", env);
    }

    int stop_device() {
        if (device_ <= 0) return 0;
        kill(device_, SIGTERM);
        const int status = wait_exit(device_, 10s);
        if (status < 0) {
            kill(device_, SIGKILL);
            wait_exit(device_, 5s);
        }
        device_ = 0;
        return status;
    }

    std::string update(const std::string& id, const std::string& version, const std::vector<uint8_t>& body,
                       const std::string& url, const std::string& sha = "") {
        return R"({"action":"update","updateId":")" + id + R"(","type":"thermostat","version":")" + version +
               R"(","url":")" + url + R"(","sha256":")" + (sha.empty() ? sha256_hex(body) : sha) + R"(","size":)" +
               std::to_string(body.size()) + "}";
    }

    std::string dir_, bundle_, state_;
    int broker_port_ = 0;
    pid_t broker_ = 0;
    pid_t device_ = 0;
    std::unique_ptr<HttpsImageServer> images_;
    std::unique_ptr<ServerStandIn> server_;
    std::vector<uint8_t> v100_, v110_;
};

TEST_F(LinuxDeviceE2E, UpdatesOverMutualTlsRebootsAndReportsSuccess) {
    start_device({"--install", dir_ + "/v100.bin"});
    const int a = server_->wait_announce("1.0.0");
    ASSERT_GE(a, 0) << "no announce from the device";
    EXPECT_EQ(json_field(server_->message(a), "slot"), "ota_0");
    EXPECT_EQ(json_field(server_->message(a), "chip"), "esp32");
    EXPECT_EQ(json_field(server_->message(a), "type"), "thermostat");

    const std::string url = images_->serve("v110.bin", v110_);
    server_->command(update("u_e2e_1", "1.1.0", v110_, url));
    const int ok = server_->wait_status("succeeded", 30s);
    ASSERT_GE(ok, 0);
    EXPECT_EQ(json_field(server_->message(ok), "version"), "1.1.0");
    EXPECT_EQ(json_field(server_->message(ok), "updateId"), "u_e2e_1");
    const int b = server_->wait_announce("1.1.0", 10s);
    ASSERT_GE(b, 0);
    EXPECT_EQ(json_field(server_->message(b), "slot"), "ota_1");
    const auto s = server_->states();
    EXPECT_EQ(s.front(), "accepted");
    EXPECT_NE(std::find(s.begin(), s.end(), "downloaded"), s.end());
    EXPECT_NE(std::find(s.begin(), s.end(), "rebooting"), s.end());
    EXPECT_EQ(stop_device(), 0) << "SIGTERM is a clean exit";

    // The new image keeps running after a restart: it was confirmed.
    server_->command(R"({"action":"none","reason":"up-to-date"})");
    const size_t before = server_->count();
    start_device();
    ASSERT_GE(server_->wait_announce("1.1.0", 10s, before), 0);
}

TEST_F(LinuxDeviceE2E, ResumesAnInterruptedDownloadWithRange) {
    images_->cut_response(0, 100000);
    start_device({"--install", dir_ + "/v100.bin"});
    ASSERT_GE(server_->wait_announce("1.0.0"), 0);
    const std::string url = images_->serve("v110.bin", v110_);
    server_->command(update("u_resume", "1.1.0", v110_, url));
    ASSERT_GE(server_->wait_status("succeeded", 30s), 0);
    const auto requests = images_->requests();
    ASSERT_GE(requests.size(), 2u);
    EXPECT_EQ(requests[0].range, "");
    EXPECT_EQ(requests[1].range, "bytes=100000-");
    EXPECT_EQ(requests[1].if_range, "\"" + sha256_hex(v110_) + "\"");
    EXPECT_EQ(requests[1].status, 206);
}

TEST_F(LinuxDeviceE2E, ServerIgnoringRangeStillGivesACorrectImage) {
    images_->cut_response(0, 100000);
    images_->ignore_range(true);
    start_device({"--install", dir_ + "/v100.bin"});
    ASSERT_GE(server_->wait_announce("1.0.0"), 0);
    const std::string url = images_->serve("v110.bin", v110_);
    server_->command(update("u_norange", "1.1.0", v110_, url));
    ASSERT_GE(server_->wait_status("succeeded", 30s), 0);
    const auto requests = images_->requests();
    ASSERT_GE(requests.size(), 2u);
    EXPECT_EQ(requests[1].status, 200);
}

TEST_F(LinuxDeviceE2E, FailingSelfTestRollsBack) {
    const auto broken = image("1.1.0", 200000, 3, "MQOTA_SELFTEST_FAIL");
    start_device({"--install", dir_ + "/v100.bin"});
    ASSERT_GE(server_->wait_announce("1.0.0"), 0);
    const size_t before = server_->count();
    server_->command(update("u_broken", "1.1.0", broken, images_->serve("broken.bin", broken)));
    const int rb = server_->wait_status("rolled_back", 30s);
    ASSERT_GE(rb, 0);
    EXPECT_EQ(json_field(server_->message(rb), "updateId"), "u_broken");
    EXPECT_EQ(json_field(server_->message(rb), "error"), "self-test-failed");
    const int a = server_->wait_announce("1.0.0", 10s, before);
    ASSERT_GE(a, 0);
    EXPECT_EQ(json_field(server_->message(a), "slot"), "ota_0");
}

TEST_F(LinuxDeviceE2E, CrashBeforeConfirmingRollsBackOnTheNextStart) {
    start_device({"--install", dir_ + "/v100.bin"}, {"MQOTA_SIM_CRASH_BEFORE_CONFIRM=1"});
    ASSERT_GE(server_->wait_announce("1.0.0"), 0);
    server_->command(update("u_crash", "1.1.0", v110_, images_->serve("v110.bin", v110_)));
    ASSERT_GE(server_->wait_status("rebooting", 30s), 0);
    EXPECT_EQ(wait_exit(device_, 10s), 70) << "simulated crash right after booting the new image";
    device_ = 0;
    const size_t before = server_->count();
    start_device();
    const int rb = server_->wait_status("rolled_back", 15s, before);
    ASSERT_GE(rb, 0);
    EXPECT_EQ(json_field(server_->message(rb), "error"), "not-confirmed");
    ASSERT_GE(server_->wait_announce("1.0.0", 10s, before), 0);
}

TEST_F(LinuxDeviceE2E, RejectsAnImageLargerThanTheSlot) {
    start_device({"--install", dir_ + "/v100.bin", "--slot-size", "300000"});
    ASSERT_GE(server_->wait_announce("1.0.0"), 0);
    server_->command(update("u_big", "1.1.0", v110_, images_->serve("v110.bin", v110_)));
    const int r = server_->wait_status("rejected");
    ASSERT_GE(r, 0);
    EXPECT_EQ(json_field(server_->message(r), "error"), "too-large");
    EXPECT_TRUE(images_->requests().empty());
}

TEST_F(LinuxDeviceE2E, Sha256MismatchFails) {
    start_device({"--install", dir_ + "/v100.bin"});
    ASSERT_GE(server_->wait_announce("1.0.0"), 0);
    const std::string wrong(64, 'a');
    server_->command(update("u_sha", "1.1.0", v110_, images_->serve("v110.bin", v110_), wrong));
    const int f = server_->wait_status("failed", 30s);
    ASSERT_GE(f, 0);
    EXPECT_EQ(json_field(server_->message(f), "error"), "sha256-mismatch");
}

TEST_F(LinuxDeviceE2E, StopMidDownloadAndResumeAfterRestart) {
    start_device({"--install", dir_ + "/v100.bin", "--max-download-rate", "100000"});
    ASSERT_GE(server_->wait_announce("1.0.0"), 0);
    const std::string url = images_->serve("v110.bin", v110_);
    const std::string cmd = update("u_restart", "1.1.0", v110_, url);
    server_->command(cmd);
    ASSERT_GE(server_->wait_for("status", [](const std::string& p) {
        return json_field(p, "state") == "downloading" && std::stoi(json_field(p, "progress")) >= 30;
    }, 20s), 0);
    EXPECT_EQ(stop_device(), 0);
    // After the restart the server answers the announce with the same command.
    const size_t before = server_->count();
    start_device();
    ASSERT_GE(server_->wait_announce("1.0.0", 10s, before), 0);
    server_->command(cmd);
    ASSERT_GE(server_->wait_status("succeeded", 30s, before), 0);
    const auto requests = images_->requests();
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[1].status, 206);
    EXPECT_EQ(requests[1].range.rfind("bytes=", 0), 0u);
}

TEST_F(LinuxDeviceE2E, ExitsNonZeroOnConfigurationErrors) {
    std::vector<std::string> args = {MQOTA_LINUX_DEVICE, "--bundle", dir_ + "/missing", "--state", state_};
    pid_t pid = spawn(args, dir_ + "/device.log");
    EXPECT_EQ(wait_exit(pid, 5s), 2);
    pid = spawn({MQOTA_LINUX_DEVICE, "--bundle", bundle_}, dir_ + "/device.log");
    EXPECT_EQ(wait_exit(pid, 5s), 2) << "--state is required";
    pid = spawn({MQOTA_LINUX_DEVICE, "--bundle", bundle_, "--state", state_}, dir_ + "/device.log");
    EXPECT_EQ(wait_exit(pid, 5s), 3) << "nothing installed, nothing to boot";
}

}  // namespace
}  // namespace mqota::test
