#include "openssl_trust.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <time.h>

#include <memory>

namespace mqota::linux_port {
namespace {

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;

void reverse_into(const uint8_t* in, size_t len, uint8_t* out) {
    for (size_t i = 0; i < len; ++i) {
        out[i] = in[len - 1 - i];
    }
}

// An EVP_PKEY from OSSL_PARAMs (RSA n/e, or an EC group and point): OpenSSL 3's non-deprecated way.
PkeyPtr key_from_params(const char* type, OSSL_PARAM_BLD* bld) {
    PkeyPtr none(nullptr, EVP_PKEY_free);
    std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(OSSL_PARAM_BLD_to_param(bld), OSSL_PARAM_free);
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), EVP_PKEY_CTX_free);
    EVP_PKEY* key = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        return none;
    }
    return PkeyPtr(key, EVP_PKEY_free);
}

}  // namespace

OpensslTrust::~OpensslTrust() { EVP_PKEY_free(command_key_); }

bool OpensslTrust::load_command_key(const std::string& pem_file, std::string* error) {
    FILE* f = fopen(pem_file.c_str(), "r");
    if (f == nullptr) {
        *error = "cannot read " + pem_file;
        return false;
    }
    EVP_PKEY* key = PEM_read_PUBKEY(f, nullptr, nullptr, nullptr);
    fclose(f);
    if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || EVP_PKEY_get_bits(key) != 256) {
        EVP_PKEY_free(key);
        *error = pem_file + ": not an ECDSA P-256 public key (PEM)";
        return false;
    }
    EVP_PKEY_free(command_key_);
    command_key_ = key;
    return true;
}

bool OpensslTrust::unix_time(uint64_t* seconds) {
    const long long now = static_cast<long long>(time(nullptr)) + clock_offset_s_;
    if (now <= 0) {
        return false;
    }
    *seconds = static_cast<uint64_t>(now);
    return true;
}

bool OpensslTrust::verify_command_signature(const uint8_t* message, size_t len, const uint8_t* der, size_t der_len) {
    if (command_key_ == nullptr) {
        return false;
    }
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, command_key_) == 1 &&
           EVP_DigestVerify(ctx.get(), der, der_len, message, len) == 1;
}

bool OpensslTrust::verify_rsa3072_pss(const uint8_t n_le[384], uint32_t e, const uint8_t digest[kSha256Bytes],
                                      const uint8_t signature_le[384]) {
    uint8_t n_be[384];
    uint8_t sig_be[384];
    reverse_into(n_le, sizeof(n_be), n_be);
    reverse_into(signature_le, sizeof(sig_be), sig_be);
    std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
    std::unique_ptr<BIGNUM, decltype(&BN_free)> n(BN_bin2bn(n_be, sizeof(n_be), nullptr), BN_free);
    std::unique_ptr<BIGNUM, decltype(&BN_free)> exp(BN_new(), BN_free);
    if (!bld || !n || !exp || BN_set_word(exp.get(), e) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, exp.get()) != 1) {
        return false;
    }
    PkeyPtr key = key_from_params("RSA", bld.get());
    if (!key || EVP_PKEY_get_bits(key.get()) != 3072) {
        return false;
    }
    // espsecure: PSS, MGF1-SHA256, salt length 32, over the SHA-256 digest.
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key.get(), nullptr), EVP_PKEY_CTX_free);
    return ctx && EVP_PKEY_verify_init(ctx.get()) == 1 &&
           EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) == 1 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), 32) == 1 &&
           EVP_PKEY_verify(ctx.get(), sig_be, sizeof(sig_be), digest, kSha256Bytes) == 1;
}

bool OpensslTrust::verify_ecdsa_p256(const uint8_t point_le[64], const uint8_t digest[kSha256Bytes], const uint8_t rs_le[64]) {
    uint8_t point[65];
    point[0] = 0x04;  // SEC 1 uncompressed point: X, Y big-endian
    reverse_into(point_le, 32, point + 1);
    reverse_into(point_le + 32, 32, point + 33);
    std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
    if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) != 1) {
        return false;
    }
    PkeyPtr key = key_from_params("EC", bld.get());
    if (!key) {
        return false;  // not a point on the curve
    }
    uint8_t r_be[32];
    uint8_t s_be[32];
    reverse_into(rs_le, 32, r_be);
    reverse_into(rs_le + 32, 32, s_be);
    ECDSA_SIG* sig = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(r_be, sizeof(r_be), nullptr);
    BIGNUM* s = BN_bin2bn(s_be, sizeof(s_be), nullptr);
    if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig, r, s) != 1) {
        ECDSA_SIG_free(sig);
        BN_free(r);
        BN_free(s);
        return false;
    }
    unsigned char* der = nullptr;
    const int der_len = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key.get(), nullptr), EVP_PKEY_CTX_free);
    const bool ok = der_len > 0 && ctx && EVP_PKEY_verify_init(ctx.get()) == 1 &&
                    EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) == 1 &&
                    EVP_PKEY_verify(ctx.get(), der, static_cast<size_t>(der_len), digest, kSha256Bytes) == 1;
    OPENSSL_free(der);
    return ok;
}

void OpensslTrust::sha256(const uint8_t* data, size_t len, uint8_t digest[kSha256Bytes]) {
    unsigned int out_len = 0;
    EVP_Digest(data, len, digest, &out_len, EVP_sha256(), nullptr);
}

}  // namespace mqota::linux_port
