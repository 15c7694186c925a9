// mqota-linux-device: the mqota update agent on a Linux host, with the device's flash simulated by
// files in a state directory. See esp32/README.md "Linux device" for the options and files.
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include <atomic>

#include "agent_events.h"
#include "claim_client.h"
#include "file_util.h"
#include "curl_transfer.h"
#include "device_bundle.h"
#include "file_kv_store.h"
#include "flash_slots.h"
#include "linux_port.h"
#include "reset_reason.h"
#include "log.h"
#include "mosquitto_link.h"
#include "openssl_trust.h"
#include "ota_agent/update_agent.h"

using namespace mqota;
using namespace mqota::linux_port;

namespace {

constexpr int kExitConfig = 2;       // bad options, unreadable bundle or state
constexpr int kExitNoImage = 3;      // nothing bootable in the slots
constexpr int kExitSimulatedCrash = 70;

// Network errors retry after 1-3 s here (a host on a LAN or loopback); refusals back off as on the chip.
ReconnectPolicyConfig linux_reconnect_defaults() {
    ReconnectPolicyConfig c;
    c.network_min_ms = 1000;
    c.network_max_ms = 3000;
    return c;
}

struct Options {
    std::string bundle_dir;
    std::string state_dir;
    std::string install_image;
    bool install_only = false;
    uint32_t self_test_timeout_ms = 30000;
    uint32_t download_retries = 4;
    uint32_t retry_backoff_ms = 1000;
    uint32_t slot_size = 0x180000;  // ota_0/ota_1 in esp32/partitions.csv: 1.5 MiB
    long max_download_rate = 0;
    uint32_t efuse_secure_version = 0;
    uint32_t defer_first = 0;        // the application defers the first N update offers ...
    uint32_t defer_retry_after = 5;  // ... asking for them again after this many seconds
    long long clock_offset_s = 0;
    LogLevel log_level = LogLevel::info;
    std::string device_id;  // claim mode: the id to ask for; --make-csr: the CSR's CN
    std::string make_csr;   // write a CSR for the device's own key here and exit
    ReconnectPolicyConfig reconnect = linux_reconnect_defaults();
};

void usage(FILE* out) {
    fprintf(out,
            "usage: mqota-linux-device --bundle DIR --state DIR [options]\n"
            "       mqota-linux-device --state DIR --device-id ID --make-csr FILE\n"
            "\n"
            "  --bundle DIR               device bundle from `mqota device add` (device.json, device.crt,\n"
            "                             device.key, ca.crt), or a claim bundle from `mqota provision claim\n"
            "                             create` (claim.json, ...): the first start claims an identity\n"
            "  --state DIR                simulated flash: ota_0.bin, ota_1.bin, otadata, nvs.kv (created)\n"
            "  --install IMAGE            factory flash: write IMAGE to ota_0, erase otadata, then boot\n"
            "  --install-only             with --install: exit after writing\n"
            "  --self-test-timeout-ms N   a new image must reach the broker within N ms (default 30000)\n"
            "  --download-retries N       retries after a failed download attempt (default 4)\n"
            "  --retry-backoff-ms N       first retry delay, doubled per retry up to 30 s (default 1000)\n"
            "  --slot-size BYTES          size of each OTA slot (default 1572864, as partitions.csv)\n"
            "  --max-download-rate B/S    throttle downloads (tests)\n"
            "  --efuse-secure-version N   simulated anti-rollback eFuse value (default 0)\n"
            "  --defer-first N            the application defers the first N update offers (busy), as\n"
            "                             MQOTA_SIM_DEFER_FIRST=N does (default 0)\n"
            "  --defer-retry-after S      ... asking for them again after S seconds (default 5)\n"
            "  --clock-offset-s N         shift the wall clock by N seconds (command expiry tests)\n"
            "  --log-level LEVEL          error, warn, info (default) or debug\n"
            "  --device-id ID             with a claim bundle: the device id to ask for (default: linux-<machine id>)\n"
            "  --make-csr FILE            make the device key in STATE/identity (if missing) and write a CSR for it\n"
            "                             (CN = --device-id) to FILE, for `mqota device add ID --csr FILE`; then exit\n"
            "  --refused-backoff-ms N     first retry delay after the broker refused the certificate (default 30000),\n"
            "                             doubled per refusal in a row, with jitter\n"
            "  --refused-backoff-max-ms N ceiling of that delay (default 3600000: an hour)\n"
            "  --network-retry-ms N       retry after a network error within N..3N ms (default 1000)\n"
            "\n"
            "environment: MQOTA_SIM_CRASH_BEFORE_CONFIRM=1 exits with status 70 right after booting an\n"
            "image in pending-verify state, before it can confirm itself (the next start rolls back).\n");
}

bool parse_u32(const char* text, uint32_t* out) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v > 0xFFFFFFFFull || text[0] == '-') {
        return false;
    }
    *out = static_cast<uint32_t>(v);
    return true;
}

bool parse_options(int argc, char** argv, Options* o) {
    enum { kBundle = 1000, kState, kInstall, kInstallOnly, kSelfTest, kRetries, kBackoff, kSlotSize, kRate, kSecure, kDeferFirst, kDeferRetryAfter, kClock, kLog, kHelp,
           kDeviceId, kRefused, kRefusedMax, kNetwork, kMakeCsr };
    static const struct option kLong[] = {
        {"bundle", required_argument, nullptr, kBundle},
        {"state", required_argument, nullptr, kState},
        {"install", required_argument, nullptr, kInstall},
        {"install-only", no_argument, nullptr, kInstallOnly},
        {"self-test-timeout-ms", required_argument, nullptr, kSelfTest},
        {"download-retries", required_argument, nullptr, kRetries},
        {"retry-backoff-ms", required_argument, nullptr, kBackoff},
        {"slot-size", required_argument, nullptr, kSlotSize},
        {"max-download-rate", required_argument, nullptr, kRate},
        {"efuse-secure-version", required_argument, nullptr, kSecure},
        {"defer-first", required_argument, nullptr, kDeferFirst},
        {"defer-retry-after", required_argument, nullptr, kDeferRetryAfter},
        {"clock-offset-s", required_argument, nullptr, kClock},
        {"log-level", required_argument, nullptr, kLog},
        {"help", no_argument, nullptr, kHelp},
        {"device-id", required_argument, nullptr, kDeviceId},
        {"make-csr", required_argument, nullptr, kMakeCsr},
        {"refused-backoff-ms", required_argument, nullptr, kRefused},
        {"refused-backoff-max-ms", required_argument, nullptr, kRefusedMax},
        {"network-retry-ms", required_argument, nullptr, kNetwork},
        {nullptr, 0, nullptr, 0},
    };
    int c;
    uint32_t v = 0;
    if (const char* defer = getenv("MQOTA_SIM_DEFER_FIRST"); defer != nullptr && !parse_u32(defer, &o->defer_first)) return false;
    while ((c = getopt_long(argc, argv, "", kLong, nullptr)) != -1) {
        switch (c) {
            case kBundle: o->bundle_dir = optarg; break;
            case kState: o->state_dir = optarg; break;
            case kInstall: o->install_image = optarg; break;
            case kInstallOnly: o->install_only = true; break;
            case kSelfTest:
                if (!parse_u32(optarg, &o->self_test_timeout_ms)) return false;
                break;
            case kRetries:
                if (!parse_u32(optarg, &o->download_retries) || o->download_retries > 254) return false;
                break;
            case kBackoff:
                if (!parse_u32(optarg, &o->retry_backoff_ms)) return false;
                break;
            case kSlotSize:
                if (!parse_u32(optarg, &o->slot_size) || o->slot_size < kImagePrefixBytes) return false;
                break;
            case kRate:
                if (!parse_u32(optarg, &v)) return false;
                o->max_download_rate = static_cast<long>(v);
                break;
            case kSecure:
                if (!parse_u32(optarg, &o->efuse_secure_version)) return false;
                break;
            case kDeferFirst:
                if (!parse_u32(optarg, &o->defer_first)) return false;
                break;
            case kDeferRetryAfter:
                if (!parse_u32(optarg, &o->defer_retry_after) || o->defer_retry_after < 1 || o->defer_retry_after > kRetryAfterMaxS) return false;
                break;
            case kClock: {
                char* end = nullptr;
                o->clock_offset_s = strtoll(optarg, &end, 10);
                if (end == optarg || *end != '\0') return false;
                break;
            }
            case kLog:
                if (!parse_log_level(optarg, &o->log_level)) return false;
                break;
            case kHelp: usage(stdout); exit(0);
            case kDeviceId: o->device_id = optarg; break;
            case kMakeCsr: o->make_csr = optarg; break;
            case kRefused:
                if (!parse_u32(optarg, &o->reconnect.refused_first_ms) || o->reconnect.refused_first_ms == 0) return false;
                break;
            case kRefusedMax:
                if (!parse_u32(optarg, &o->reconnect.refused_max_ms) || o->reconnect.refused_max_ms == 0) return false;
                break;
            case kNetwork:
                if (!parse_u32(optarg, &o->reconnect.network_min_ms) || o->reconnect.network_min_ms > 0x40000000u) return false;
                o->reconnect.network_max_ms = o->reconnect.network_min_ms * 3;
                break;
            default: return false;
        }
    }
    if (!o->make_csr.empty()) {
        return optind == argc && !o->state_dir.empty() && !o->device_id.empty();
    }
    if (optind != argc || o->bundle_dir.empty() || o->state_dir.empty()) {
        return false;
    }
    return !o->install_only || !o->install_image.empty();
}

// A reboot re-executes this program with the same options, minus the factory install.
std::vector<std::string> reboot_arguments(int argc, char** argv) {
    std::vector<std::string> args;
    for (int i = 0; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--install") {
            ++i;
            continue;
        }
        if (a.compare(0, 10, "--install=") == 0) {
            continue;
        }
        args.push_back(a);
    }
    return args;
}

[[noreturn]] void reexec(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    log_line(LogLevel::error, "main", "reboot: execv failed: %s", strerror(errno));
    _exit(1);
}

// Without --device-id a claiming host asks for linux-<first 12 hex digits of /etc/machine-id>,
// as an ESP32 derives its id from the eFuse MAC.
std::string default_device_id() {
    std::string id;
    if (read_text_file("/etc/machine-id", &id, 64) && id.size() >= 12) {
        return "linux-" + id.substr(0, 12);
    }
    return "linux-device";
}

bool make_dir(const std::string& path) {
    std::string partial;
    for (size_t i = 0; i <= path.size(); ++i) {
        if (i == path.size() || path[i] == '/') {
            if (!partial.empty() && mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
                return false;
            }
        }
        if (i < path.size()) {
            partial += path[i];
        }
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    if (!parse_options(argc, argv, &options)) {
        usage(stderr);
        return kExitConfig;
    }
    set_log_level(options.log_level);

    // Signals are taken by one thread with sigwait(); every other thread (libmosquitto's too)
    // inherits the blocked mask. Set before any thread starts.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    std::string error;
    const std::string identity_dir = options.state_dir + "/identity";
    if (!options.make_csr.empty()) {
        std::string csr;
        if (!make_dir(options.state_dir) || !make_key_and_csr(identity_dir, options.device_id, &csr, &error) ||
            !write_file_atomic(options.make_csr, csr.data(), csr.size(), &error)) {
            log_line(LogLevel::error, "main", "--make-csr: %s", error.empty() ? strerror(errno) : error.c_str());
            return kExitConfig;
        }
        log_line(LogLevel::info, "main", "CSR for %s written to %s (the key stays in %s)", options.device_id.c_str(),
                 options.make_csr.c_str(), identity_dir.c_str());
        return 0;
    }
    // A device bundle, or a claim bundle (the identity is claimed at first start, below).
    DeviceBundle bundle;
    ClaimBundle claim;
    const bool claiming = is_claim_bundle(options.bundle_dir);
    if (!(claiming ? load_claim_bundle(options.bundle_dir, &claim, &error)
                   : load_device_bundle(options.bundle_dir, &bundle, &error, identity_dir + "/device.key"))) {
        log_line(LogLevel::error, "main", "%s", error.c_str());
        return kExitConfig;
    }
    if (!make_dir(options.state_dir)) {
        log_line(LogLevel::error, "main", "cannot create %s: %s", options.state_dir.c_str(), strerror(errno));
        return kExitConfig;
    }

    FlashSlots slots(options.state_dir, options.slot_size);
    if (!options.install_image.empty()) {
        if (!slots.install(options.install_image, &error)) {
            log_line(LogLevel::error, "main", "install: %s", error.c_str());
            return kExitConfig;
        }
        log_line(LogLevel::info, "main", "installed %s into ota_0", options.install_image.c_str());
        if (options.install_only) {
            return 0;
        }
    }

    const char* reset_reason = take_reset_reason(options.state_dir);

    // Second-stage bootloader.
    const int running = slots.boot(&error);
    if (running < 0) {
        log_line(LogLevel::error, "boot", "%s; install an image with --install", error.c_str());
        return kExitNoImage;
    }
    log_line(LogLevel::info, "boot", "booting %s (%s), reset reason %s", FlashSlots::label(running), to_string(slots.state(running)), reset_reason);
    const char* crash = getenv("MQOTA_SIM_CRASH_BEFORE_CONFIRM");
    if (crash != nullptr && strcmp(crash, "1") == 0 && slots.state(running) == SlotState::pending_verify) {
        log_line(LogLevel::warn, "boot", "MQOTA_SIM_CRASH_BEFORE_CONFIRM: crashing before the image confirms itself");
        note_reset_reason("panic");
        _exit(kExitSimulatedCrash);
    }

    // Stop signals before the agent runs (during a claim) end the wait; later ones reach the agent.
    static std::atomic<bool> stopping{false};
    AgentEventQueue events;
    std::thread signal_thread([&events, stop_signals] {
        int sig = 0;
        sigwait(&stop_signals, &sig);
        stopping = true;
        AgentEvent e;
        e.kind = AgentEvent::Kind::stop;
        events.push(std::move(e));
    });
    signal_thread.detach();

    // A claim bundle: the identity is claimed once and kept in the state directory, as the
    // ESP-IDF port keeps it in NVS.
    if (claiming) {
        if (access((identity_dir + "/device.crt").c_str(), R_OK) != 0) {
            const std::string device_id = options.device_id.empty() ? default_device_id() : options.device_id;
            if (!claim_identity(claim, device_id, identity_dir, options.reconnect, stopping, &error)) {
                log_line(stopping ? LogLevel::info : LogLevel::error, "main", "claim: %s", error.c_str());
                return stopping ? 0 : kExitConfig;
            }
        }
        if (!load_device_bundle(identity_dir, &bundle, &error)) {
            log_line(LogLevel::error, "main", "%s", error.c_str());
            return kExitConfig;
        }
    }

    FileKvStore kv(options.state_dir + "/nvs.kv");
    if (!kv.load(&error)) {
        log_line(LogLevel::error, "main", "%s", error.c_str());
        return kExitConfig;
    }

    MosquittoLink link(bundle, events, options.reconnect);
    CurlTransfer transfer(bundle, slots, options.max_download_rate);
    const std::vector<std::string> reboot_args = reboot_arguments(argc, argv);
    LinuxPort port(slots, kv, link, transfer, options.efuse_secure_version, [&] {
        log_line(LogLevel::info, "main", "rebooting");
        transfer.abort();
        link.stop();
        note_reset_reason("software");
        reexec(reboot_args);
    }, reset_reason);

    // The simulated application: busy for the first N offers (docs/protocol.md "Deferral").
    uint32_t offers = 0;
    port.set_deferral([&](const char* version, uint32_t, uint32_t* retry_after_s, char* reason, size_t cap) {
        if (offers >= options.defer_first) return false;
        ++offers;
        *retry_after_s = options.defer_retry_after;
        snprintf(reason, cap, "application busy (offer %u of %u deferred): %s later", static_cast<unsigned>(offers),
                 static_cast<unsigned>(options.defer_first), version);
        return true;
    });

    AgentConfig config;
    config.device_id = bundle.device_id.c_str();
    config.self_test_timeout_ms = options.self_test_timeout_ms;
    config.download_attempts = static_cast<uint8_t>(options.download_retries + 1);
    config.retry_backoff_ms = options.retry_backoff_ms;
    config.retry_backoff_max_ms = 30000;
    // docs/security.md: what the bundle says this device trusts beyond TLS.
    OpensslTrust trust(options.clock_offset_s);
    config.trust = &trust;
    if (!bundle.command_key_file.empty()) {
        if (!trust.load_command_key(bundle.command_key_file, &error)) {
            log_line(LogLevel::error, "main", "%s", error.c_str());
            return kExitConfig;
        }
        config.require_signed_commands = true;
    }
    config.image_keys.digests = reinterpret_cast<const uint8_t(*)[kSha256Bytes]>(bundle.image_key_digests.data());
    config.image_keys.count = bundle.image_key_digests.size();
    log_line(LogLevel::info, "main", "update commands: %s; images: %s",
             config.require_signed_commands ? "signed by the command key only" : "not signature-checked",
             config.image_keys.count > 0 ? "Secure Boot v2 signature of a trusted key required" : "not signature-checked");
    UpdateAgent agent(port, config);
    if (!agent.start()) {
        return kExitConfig;
    }
    if (!bundle.type.empty() && bundle.type != agent.device_type()) {
        log_line(LogLevel::warn, "main", "bundle type %s differs from the running image's project name %s",
                 bundle.type.c_str(), agent.device_type());
    }

    if (!link.start(&error)) {
        log_line(LogLevel::error, "main", "%s", error.c_str());
        return kExitConfig;
    }

    bool stop = false;
    while (!stop) {
        const uint32_t wait = agent.service();
        AgentEvent e;
        if (!events.pop(&e, wait == UpdateAgent::kNoDeadline ? UINT32_MAX : wait)) {
            continue;
        }
        // Drain everything queued before the next service() step, so that e.g. a cancel right
        // after an update command is seen before the download starts.
        do {
            switch (e.kind) {
                case AgentEvent::Kind::connected: agent.on_connected(e.flag); break;
                case AgentEvent::Kind::disconnected: agent.on_disconnected(); break;
                case AgentEvent::Kind::subscribed: agent.on_subscribed(e.flag); break;
                case AgentEvent::Kind::message: agent.on_message(e.topic.c_str(), e.payload.data(), e.payload.size()); break;
                case AgentEvent::Kind::stop: stop = true; break;
            }
        } while (!stop && events.pop(&e, 0));
    }
    log_line(LogLevel::info, "main", "stopping");
    agent.shutdown();
    link.stop();
    return 0;
}
