#include "support/test_pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>

#include <stdexcept>

namespace mqota::test {
namespace {

EVP_PKEY* new_key() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    if (key == nullptr) throw std::runtime_error("EC key generation failed");
    return key;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr) throw std::runtime_error(std::string("extension ") + value);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

X509* make_cert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, bool ca, const char* san,
                const char* eku) {
    static long serial = 1000;
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), ++serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 7 * 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(issuer != nullptr ? issuer : cert));
    X509* signer = issuer != nullptr ? issuer : cert;
    add_ext(cert, signer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(cert, signer, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    add_ext(cert, signer, NID_subject_key_identifier, "hash");
    if (issuer != nullptr) add_ext(cert, signer, NID_authority_key_identifier, "keyid:always");
    if (san != nullptr) add_ext(cert, signer, NID_subject_alt_name, san);
    if (eku != nullptr) add_ext(cert, signer, NID_ext_key_usage, eku);
    if (X509_sign(cert, issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
        throw std::runtime_error("sign failed");
    }
    return cert;
}

void write_cert(const std::string& path, X509* cert) {
    FILE* f = fopen(path.c_str(), "w");
    if (f == nullptr || PEM_write_X509(f, cert) != 1) throw std::runtime_error("write " + path);
    fclose(f);
}

void write_key(const std::string& path, EVP_PKEY* key) {
    FILE* f = fopen(path.c_str(), "w");
    // PEM_write_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY").
    if (f == nullptr || PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        throw std::runtime_error("write " + path);
    }
    fclose(f);
}

template <typename T, T* (*Read)(FILE*, T**, pem_password_cb*, void*)>
T* read_pem(const std::string& path) {
    FILE* f = fopen(path.c_str(), "r");
    if (f == nullptr) throw std::runtime_error("read " + path);
    T* v = Read(f, nullptr, nullptr, nullptr);
    fclose(f);
    if (v == nullptr) throw std::runtime_error("parse " + path);
    return v;
}

}  // namespace

TestPki make_test_pki(const std::string& dir) {
    EVP_PKEY* server_ca_key = new_key();
    X509* server_ca = make_cert(server_ca_key, "mqota test server CA", nullptr, nullptr, true, nullptr, nullptr);
    EVP_PKEY* server_key = new_key();
    X509* server = make_cert(server_key, "localhost", server_ca, server_ca_key, false, "DNS:localhost,IP:127.0.0.1",
                             "serverAuth");
    EVP_PKEY* device_ca_key = new_key();
    X509* device_ca = make_cert(device_ca_key, "mqota test device CA", nullptr, nullptr, true, nullptr, nullptr);

    TestPki pki{dir + "/server-ca.crt", dir + "/server.crt", dir + "/server.key", dir + "/device-ca.crt"};
    write_cert(pki.server_ca_crt, server_ca);
    write_cert(pki.server_crt, server);
    write_key(pki.server_key, server_key);
    write_cert(pki.device_ca_crt, device_ca);
    write_key(dir + "/device-ca.key", device_ca_key);
    for (X509* c : {server_ca, server, device_ca}) X509_free(c);
    for (EVP_PKEY* k : {server_ca_key, server_key, device_ca_key}) EVP_PKEY_free(k);
    return pki;
}

void issue_client_certificate(const std::string& pki_dir, const std::string& common_name, const std::string& crt_path,
                              const std::string& key_path) {
    X509* ca = read_pem<X509, PEM_read_X509>(pki_dir + "/device-ca.crt");
    EVP_PKEY* ca_key = read_pem<EVP_PKEY, PEM_read_PrivateKey>(pki_dir + "/device-ca.key");
    EVP_PKEY* key = new_key();
    X509* cert = make_cert(key, common_name.c_str(), ca, ca_key, false, nullptr, "clientAuth");
    write_cert(crt_path, cert);
    write_key(key_path, key);
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
}

}  // namespace mqota::test
