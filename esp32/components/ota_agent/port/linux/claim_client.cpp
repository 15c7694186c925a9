#include "claim_client.h"

#include <mosquitto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <errno.h>
#include <string.h>

#include <chrono>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "cJSON.h"
#include "device_bundle.h"
#include "file_util.h"
#include "log.h"
#include "ota_agent/claim.h"
#include "ota_agent/protocol.h"

namespace mqota::linux_port {
namespace {

constexpr int kKeepaliveSeconds = 30;
// How long to wait for an answer before asking again on the same connection.
constexpr auto kAnswerWait = std::chrono::seconds(30);
const int kGranted[] = {1};

bool json_string(const cJSON* root, const char* name, std::string* out) {
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!cJSON_IsString(item) || item->valuestring == nullptr || item->valuestring[0] == '\0') {
        return false;
    }
    *out = item->valuestring;
    return true;
}

struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct ReqFree {
    void operator()(X509_REQ* r) const { X509_REQ_free(r); }
};
struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<size_t>(len));
}

// The device key: read from key_file, or made (ECDSA P-256) and written there with mode 0600.
std::unique_ptr<EVP_PKEY, PkeyFree> device_key(const std::string& key_file, std::string* error) {
    std::string pem;
    if (read_text_file(key_file, &pem, 16 * 1024)) {
        std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
        std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
        if (!key) {
            *error = key_file + ": not a PEM private key";
        }
        return key;
    }
    std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_EC_gen("P-256"));
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    if (!key || !bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        *error = "cannot make an ECDSA P-256 key";
        return nullptr;
    }
    const std::string text = bio_text(bio.get());
    const mode_t old = umask(077);
    const bool written = write_file_atomic(key_file, text.data(), text.size(), error);
    umask(old);
    if (!written) {
        return nullptr;
    }
    chmod(key_file.c_str(), 0600);
    log_line(LogLevel::info, "claim", "made a new ECDSA P-256 key in %s", key_file.c_str());
    return key;
}

std::string make_csr(EVP_PKEY* key, const std::string& device_id, std::string* error) {
    std::unique_ptr<X509_REQ, ReqFree> req(X509_REQ_new());
    X509_NAME* name = req ? X509_REQ_get_subject_name(req.get()) : nullptr;
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    if (!req || !name || !bio || X509_REQ_set_version(req.get(), 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(device_id.c_str()), -1, -1, 0) != 1 ||
        X509_REQ_set_pubkey(req.get(), key) != 1 || X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0 ||
        PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
        *error = "cannot make the certificate signing request";
        return "";
    }
    return bio_text(bio.get());
}

// One claim connection: subscribe, ask, wait for the answer. Callbacks run in this thread
// (mosquitto_loop), so no locking is needed.
struct Exchange {
    ClaimTopics topics;
    std::string request;
    std::string device_id;
    int connack = -1;
    bool subscribed = false;
    bool answered = false;
    ClaimAnswer answer{};
    char cert[kCertificatePemMax + 1] = {};
};

void on_connect(struct mosquitto* mosq, void* ctx, int rc) {
    auto* x = static_cast<Exchange*>(ctx);
    x->connack = rc;
    if (rc != 0) {
        log_line(LogLevel::error, "claim", "connection refused: %s", mosquitto_connack_string(rc));
        return;
    }
    mosquitto_subscribe(mosq, nullptr, x->topics.response(), 1);
}

void on_subscribe(struct mosquitto* mosq, void* ctx, int, int count, const int* granted) {
    auto* x = static_cast<Exchange*>(ctx);
    if (count < 1 || granted[0] == 0x80) {
        log_line(LogLevel::error, "claim", "subscription to %s refused", x->topics.response());
        return;
    }
    x->subscribed = true;
    mosquitto_publish(mosq, nullptr, x->topics.request(), static_cast<int>(x->request.size()), x->request.data(), 1, false);
    log_line(LogLevel::info, "claim", "asked for the certificate of %s on %s", x->device_id.c_str(), x->topics.request());
}

void on_message(struct mosquitto*, void* ctx, const struct mosquitto_message* m) {
    auto* x = static_cast<Exchange*>(ctx);
    const ClaimAnswer a = decode_claim_answer(static_cast<const char*>(m->payload), static_cast<size_t>(m->payloadlen),
                                              x->device_id.c_str(), x->cert, sizeof(x->cert));
    if (a.status == ClaimStatus::invalid) {
        log_line(LogLevel::warn, "claim", "ignored an answer that is not for %s", x->device_id.c_str());
        return;
    }
    x->answer = a;
    x->answered = true;
}

}  // namespace

bool is_claim_bundle(const std::string& dir) { return access((dir + "/claim.json").c_str(), R_OK) == 0; }

bool load_claim_bundle(const std::string& dir, ClaimBundle* out, std::string* error) {
    std::string text;
    const std::string path = dir + "/claim.json";
    if (!read_text_file(path, &text, 64 * 1024)) {
        *error = "cannot read " + path;
        return false;
    }
    cJSON* root = cJSON_ParseWithLength(text.data(), text.size());
    ClaimBundle b;
    const bool ok = cJSON_IsObject(root) && json_string(root, "claimId", &b.claim_id) && json_string(root, "brokerUrl", &b.broker_url);
    json_string(root, "type", &b.type);
    // Checked here as strings of 64 hex digits; load_device_bundle reads them once claimed.
    bool digests_ok = true;
    const cJSON* digests = cJSON_GetObjectItemCaseSensitive(root, "imageKeyDigests");
    if (digests != nullptr) {
        const cJSON* d = nullptr;
        digests_ok = cJSON_IsArray(digests) && cJSON_GetArraySize(digests) <= 16;
        cJSON_ArrayForEach(d, digests) {
            digests_ok = digests_ok && cJSON_IsString(d) && strlen(d->valuestring) == 64 &&
                         strspn(d->valuestring, "0123456789abcdefABCDEF") == 64;
            if (digests_ok) {
                b.image_key_digests.emplace_back(d->valuestring);
            }
        }
    }
    cJSON_Delete(root);
    if (!ok || !is_valid_device_id(b.claim_id.c_str())) {
        *error = path + ": expected {\"claimId\", \"brokerUrl\"}";
        return false;
    }
    if (!digests_ok) {
        *error = path + ": imageKeyDigests must be a list of SHA-256 digests in hex";
        return false;
    }
    if (!parse_broker_url(b.broker_url, &b.broker_host, &b.broker_port, error)) {
        return false;
    }
    b.ca_file = dir + "/ca.crt";
    b.cert_file = dir + "/claim.crt";
    b.key_file = dir + "/claim.key";
    for (const std::string* f : {&b.ca_file, &b.cert_file, &b.key_file}) {
        if (access(f->c_str(), R_OK) != 0) {
            *error = "cannot read " + *f;
            return false;
        }
    }
    if (access((dir + "/command-key.pem").c_str(), F_OK) == 0) {
        b.command_key_file = dir + "/command-key.pem";
    }
    *out = std::move(b);
    return true;
}

bool make_key_and_csr(const std::string& identity_dir, const std::string& device_id, std::string* csr_pem, std::string* error) {
    if (!is_valid_device_id(device_id.c_str())) {
        *error = "invalid device id " + device_id;
        return false;
    }
    if (mkdir(identity_dir.c_str(), 0700) != 0 && errno != EEXIST) {
        *error = "cannot create " + identity_dir;
        return false;
    }
    auto key = device_key(identity_dir + "/device.key", error);
    if (!key) {
        return false;
    }
    *csr_pem = make_csr(key.get(), device_id, error);
    return !csr_pem->empty();
}

bool claim_identity(const ClaimBundle& claim, const std::string& device_id, const std::string& identity_dir,
                    const ReconnectPolicyConfig& reconnect, const std::atomic<bool>& stop, std::string* error) {
    Exchange x;
    x.device_id = device_id;
    if (!x.topics.init(claim.claim_id.c_str(), device_id.c_str())) {
        *error = "invalid device id " + device_id;
        return false;
    }
    if (mkdir(identity_dir.c_str(), 0700) != 0 && errno != EEXIST) {
        *error = "cannot create " + identity_dir;
        return false;
    }
    const std::string key_file = identity_dir + "/device.key";
    auto key = device_key(key_file, error);
    if (!key) {
        return false;
    }
    const std::string csr = make_csr(key.get(), device_id, error);
    if (csr.empty()) {
        return false;
    }
    std::vector<char> request(csr.size() * 2 + 64);
    const size_t n = encode_claim_request(csr.c_str(), request.data(), request.size());
    x.request.assign(request.data(), n);

    std::mt19937 rng(std::random_device{}());
    ReconnectPolicy policy(reconnect, [](void* r) { return static_cast<uint32_t>((*static_cast<std::mt19937*>(r))()); }, &rng);

    mosquitto_lib_init();
    while (!stop) {
        // Clean session: the broker keeps nothing of a claim connection.
        struct mosquitto* mosq = mosquitto_new(x.topics.client_id(), true, &x);
        mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
        mosquitto_tls_set(mosq, claim.ca_file.c_str(), nullptr, claim.cert_file.c_str(), claim.key_file.c_str(), nullptr);
        mosquitto_tls_opts_set(mosq, 1, nullptr, nullptr);
        mosquitto_connect_callback_set(mosq, &on_connect);
        mosquitto_subscribe_callback_set(mosq, &on_subscribe);
        mosquitto_message_callback_set(mosq, &on_message);
        x.connack = -1;
        x.subscribed = false;
        x.answered = false;
        log_line(LogLevel::info, "claim", "connecting to %s as %s", claim.broker_url.c_str(), x.topics.client_id());
        int rc = mosquitto_connect(mosq, claim.broker_host.c_str(), claim.broker_port, kKeepaliveSeconds);
        auto asked_at = std::chrono::steady_clock::now();
        while (rc == MOSQ_ERR_SUCCESS && !stop && !x.answered) {
            rc = mosquitto_loop(mosq, 200, 1);
            if (x.subscribed && std::chrono::steady_clock::now() - asked_at > kAnswerWait) {
                on_subscribe(mosq, &x, 0, 1, kGranted);  // no answer yet: ask again
                asked_at = std::chrono::steady_clock::now();
            }
        }
        bool pending_wait = false;
        if (x.answered && x.answer.status == ClaimStatus::pending) {
            // An operator must approve: the answer comes on this connection; wait for it.
            log_line(LogLevel::info, "claim", "request of %s waits for an operator's approval", device_id.c_str());
            x.answered = false;
            pending_wait = true;
            while (!stop && !x.answered && (rc = mosquitto_loop(mosq, 200, 1)) == MOSQ_ERR_SUCCESS) {
            }
        }
        mosquitto_disconnect(mosq);
        mosquitto_destroy(mosq);
        if (x.answered && x.answer.status == ClaimStatus::issued) {
            std::string digests;
            for (const std::string& d : claim.image_key_digests) {
                digests += (digests.empty() ? "\"" : ",\"") + d + "\"";
            }
            const std::string json = std::string("{\"deviceId\":\"") + device_id + "\",\"type\":\"" + claim.type +
                                     "\",\"brokerUrl\":\"" + claim.broker_url + "\"" +
                                     (digests.empty() ? "" : ",\"imageKeyDigests\":[" + digests + "]") + "}\n";
            std::string ca;
            std::string command_key;
            if (!claim.command_key_file.empty()) {
                if (!read_text_file(claim.command_key_file, &command_key, 64 * 1024)) {
                    *error = "cannot read " + claim.command_key_file;
                    return false;
                }
                if (!write_file_atomic(identity_dir + "/command-key.pem", command_key.data(), command_key.size(), error)) {
                    return false;
                }
            }
            if (!read_text_file(claim.ca_file, &ca, 64 * 1024) ||
                !write_file_atomic(identity_dir + "/ca.crt", ca.data(), ca.size(), error) ||
                !write_file_atomic(identity_dir + "/device.crt", x.cert, strlen(x.cert), error) ||
                !write_file_atomic(identity_dir + "/device.json", json.data(), json.size(), error)) {
                return false;
            }
            log_line(LogLevel::info, "claim", "certificate of %s received; connecting as the device", device_id.c_str());
            mosquitto_lib_cleanup();
            return true;
        }
        if (stop) {
            break;
        }
        ConnectFailure failure = ConnectFailure::network;
        if (x.connack > 0) {
            failure = ConnectFailure::refused;
        } else if (x.answered && x.answer.status == ClaimStatus::refused) {
            log_line(LogLevel::error, "claim", "request of %s refused: %s (%s)", device_id.c_str(), x.answer.error, x.answer.reason);
            failure = ConnectFailure::refused;
        } else if (x.connack == 0 && !pending_wait) {
            policy.on_connected();
        }
        const uint32_t delay = policy.next_delay_ms(failure);
        log_line(failure == ConnectFailure::refused ? LogLevel::warn : LogLevel::info, "claim", "asking again in %u ms (%s)", delay,
                 to_string(failure));
        for (uint32_t waited = 0; waited < delay && !stop; waited += 100) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    mosquitto_lib_cleanup();
    *error = "stopped before a certificate arrived";
    return false;
}

}  // namespace mqota::linux_port
