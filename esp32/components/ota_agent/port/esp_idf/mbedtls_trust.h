// TrustPort with mbedTLS (ESP-IDF's): the command key from NVS (command_key) and the Secure
// Boot v2 primitives, so the core's checks run on the chip exactly as on Linux.
#pragma once

#include "mbedtls/pk.h"
#include "ota_agent/trust.h"

namespace mqota::esp_idf {

class MbedtlsTrust final : public TrustPort {
public:
    MbedtlsTrust();
    ~MbedtlsTrust();
    MbedtlsTrust(const MbedtlsTrust&) = delete;
    MbedtlsTrust& operator=(const MbedtlsTrust&) = delete;

    // An ECDSA P-256 public key in PEM.
    bool load_command_key(const char* pem);

    bool unix_time(uint64_t* seconds) override;
    bool verify_command_signature(const uint8_t* message, size_t len, const uint8_t* der, size_t der_len) override;
    bool verify_rsa3072_pss(const uint8_t n_le[384], uint32_t e, const uint8_t digest[kSha256Bytes],
                            const uint8_t signature_le[384]) override;
    bool verify_ecdsa_p256(const uint8_t point_le[64], const uint8_t digest[kSha256Bytes], const uint8_t rs_le[64]) override;
    void sha256(const uint8_t* data, size_t len, uint8_t digest[kSha256Bytes]) override;

private:
    mbedtls_pk_context command_key_;
    bool has_command_key_ = false;
};

}  // namespace mqota::esp_idf
