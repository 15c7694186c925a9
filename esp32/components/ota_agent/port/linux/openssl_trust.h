// TrustPort with OpenSSL 3: the command key from the bundle (command-key.pem) and the Secure
// Boot v2 primitives for image signature blocks.
#pragma once

#include <openssl/evp.h>

#include <string>

#include "ota_agent/trust.h"

namespace mqota::linux_port {

class OpensslTrust final : public TrustPort {
public:
    // clock_offset_s shifts the wall clock (tests: a device whose clock is ahead, a late replay).
    explicit OpensslTrust(long long clock_offset_s = 0) : clock_offset_s_(clock_offset_s) {}
    ~OpensslTrust();
    OpensslTrust(const OpensslTrust&) = delete;
    OpensslTrust& operator=(const OpensslTrust&) = delete;

    // Loads the command key (an ECDSA P-256 public key, PEM).
    bool load_command_key(const std::string& pem_file, std::string* error);
    bool has_command_key() const { return command_key_ != nullptr; }

    bool unix_time(uint64_t* seconds) override;
    bool verify_command_signature(const uint8_t* message, size_t len, const uint8_t* der, size_t der_len) override;
    bool verify_rsa3072_pss(const uint8_t n_le[384], uint32_t e, const uint8_t digest[kSha256Bytes],
                            const uint8_t signature_le[384]) override;
    bool verify_ecdsa_p256(const uint8_t point_le[64], const uint8_t digest[kSha256Bytes], const uint8_t rs_le[64]) override;
    void sha256(const uint8_t* data, size_t len, uint8_t digest[kSha256Bytes]) override;

private:
    long long clock_offset_s_;
    EVP_PKEY* command_key_ = nullptr;
};

}  // namespace mqota::linux_port
