// Provisioning by claim on the Linux device (docs/provisioning.md): with a claim bundle
// (`mqota provision claim create`: claim.json, claim.crt, claim.key, ca.crt) and no identity of its
// own yet, the device makes an ECDSA P-256 key with OpenSSL in its state directory (it never
// leaves it), asks for its certificate with the claim (the core's claim.h says how) and writes a
// device bundle there (device.json, device.crt, device.key, ca.crt), which it then runs with. What
// the claim bundle says the device trusts (command-key.pem, claim.json "imageKeyDigests") goes
// into that device bundle as it is.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "ota_agent/reconnect_policy.h"

namespace mqota::linux_port {

struct ClaimBundle {
    std::string claim_id;
    std::string type;
    std::string broker_url;
    std::string broker_host;
    int broker_port = 8883;
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
    std::string command_key_file;                // "" when the bundle has none
    std::vector<std::string> image_key_digests;  // hex, as in claim.json
};

// True if `dir` holds a claim bundle (claim.json).
bool is_claim_bundle(const std::string& dir);
bool load_claim_bundle(const std::string& dir, ClaimBundle* out, std::string* error);

// The device key in identity_dir/device.key (made if missing, mode 0600) and a PEM CSR for it with
// CN = device_id: what `--make-csr` prints for `mqota device add <id> --csr`.
bool make_key_and_csr(const std::string& identity_dir, const std::string& device_id, std::string* csr_pem, std::string* error);

// Claims `device_id` and writes the device bundle into identity_dir. Retries (the policy's delays)
// until a certificate arrives or `stop` becomes true; false with `error` on a fatal problem.
bool claim_identity(const ClaimBundle& claim, const std::string& device_id, const std::string& identity_dir,
                    const ReconnectPolicyConfig& reconnect, const std::atomic<bool>& stop, std::string* error);

}  // namespace mqota::linux_port
