#include "mbedtls_trust.h"

#include <string.h>
#include <time.h>

#include "mbedtls/ecdsa.h"
#include "mbedtls/ecp.h"
#include "mbedtls/rsa.h"
#include "mbedtls/sha256.h"

namespace mqota::esp_idf {
namespace {

// Before SNTP the RTC counts from 1970: a clock earlier than this is "not set".
constexpr time_t kClockSetAfter = 1700000000;  // 2023-11-14

void reverse_into(const uint8_t* in, size_t len, uint8_t* out) {
    for (size_t i = 0; i < len; ++i) {
        out[i] = in[len - 1 - i];
    }
}

}  // namespace

MbedtlsTrust::MbedtlsTrust() { mbedtls_pk_init(&command_key_); }

MbedtlsTrust::~MbedtlsTrust() { mbedtls_pk_free(&command_key_); }

bool MbedtlsTrust::load_command_key(const char* pem) {
    // mbedtls_pk_parse_public_key wants the PEM's terminating NUL counted.
    has_command_key_ = mbedtls_pk_parse_public_key(&command_key_, reinterpret_cast<const unsigned char*>(pem), strlen(pem) + 1) == 0 &&
                       mbedtls_pk_can_do(&command_key_, MBEDTLS_PK_ECDSA) && mbedtls_pk_get_bitlen(&command_key_) == 256;
    return has_command_key_;
}

bool MbedtlsTrust::unix_time(uint64_t* seconds) {
    const time_t now = time(nullptr);
    if (now < kClockSetAfter) {
        return false;
    }
    *seconds = static_cast<uint64_t>(now);
    return true;
}

bool MbedtlsTrust::verify_command_signature(const uint8_t* message, size_t len, const uint8_t* der, size_t der_len) {
    if (!has_command_key_) {
        return false;
    }
    uint8_t hash[kSha256Bytes];
    return mbedtls_sha256(message, len, hash, 0) == 0 &&
           mbedtls_pk_verify(&command_key_, MBEDTLS_MD_SHA256, hash, sizeof(hash), der, der_len) == 0;
}

bool MbedtlsTrust::verify_rsa3072_pss(const uint8_t n_le[384], uint32_t e, const uint8_t digest[kSha256Bytes],
                                      const uint8_t signature_le[384]) {
    static uint8_t n_be[384];    // only the agent task verifies: keep 768 bytes off its stack
    static uint8_t sig_be[384];
    reverse_into(n_le, sizeof(n_be), n_be);
    reverse_into(signature_le, sizeof(sig_be), sig_be);
    const uint8_t e_be[4] = {static_cast<uint8_t>(e >> 24), static_cast<uint8_t>(e >> 16), static_cast<uint8_t>(e >> 8),
                             static_cast<uint8_t>(e)};
    mbedtls_rsa_context rsa;
    mbedtls_rsa_init(&rsa);
    // espsecure: PSS with MGF1-SHA256 and a 32-byte salt over the SHA-256 digest.
    const bool ok = mbedtls_rsa_set_padding(&rsa, MBEDTLS_RSA_PKCS_V21, MBEDTLS_MD_SHA256) == 0 &&
                    mbedtls_rsa_import_raw(&rsa, n_be, sizeof(n_be), nullptr, 0, nullptr, 0, nullptr, 0, e_be, sizeof(e_be)) == 0 &&
                    mbedtls_rsa_complete(&rsa) == 0 && mbedtls_rsa_get_len(&rsa) == sizeof(n_be) &&
                    mbedtls_rsa_rsassa_pss_verify_ext(&rsa, MBEDTLS_MD_SHA256, kSha256Bytes, digest, MBEDTLS_MD_SHA256, 32, sig_be) == 0;
    mbedtls_rsa_free(&rsa);
    return ok;
}

bool MbedtlsTrust::verify_ecdsa_p256(const uint8_t point_le[64], const uint8_t digest[kSha256Bytes], const uint8_t rs_le[64]) {
    uint8_t point[65];
    point[0] = 0x04;  // SEC 1 uncompressed: X, Y big-endian
    reverse_into(point_le, 32, point + 1);
    reverse_into(point_le + 32, 32, point + 33);
    uint8_t r_be[32];
    uint8_t s_be[32];
    reverse_into(rs_le, 32, r_be);
    reverse_into(rs_le + 32, 32, s_be);
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi r;
    mbedtls_mpi s;
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    const bool ok = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) == 0 &&
                    mbedtls_ecp_point_read_binary(&grp, &q, point, sizeof(point)) == 0 &&
                    mbedtls_ecp_check_pubkey(&grp, &q) == 0 && mbedtls_mpi_read_binary(&r, r_be, sizeof(r_be)) == 0 &&
                    mbedtls_mpi_read_binary(&s, s_be, sizeof(s_be)) == 0 &&
                    mbedtls_ecdsa_verify(&grp, digest, kSha256Bytes, &q, &r, &s) == 0;
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&r);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return ok;
}

void MbedtlsTrust::sha256(const uint8_t* data, size_t len, uint8_t digest[kSha256Bytes]) {
    mbedtls_sha256(data, len, digest, 0);
}

}  // namespace mqota::esp_idf
