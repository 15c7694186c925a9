// A throwaway PKI for the end-to-end tests, shaped like mqota's: a server CA that signs the
// broker/HTTPS certificate, a device CA that signs client certificates (CN = device id). ECDSA
// P-256 keys written as PKCS#8 PEM, as `mqota device add` writes them.
#pragma once

#include <string>

namespace mqota::test {

struct TestPki {
    std::string server_ca_crt;
    std::string server_crt;
    std::string server_key;
    std::string device_ca_crt;
};

// Writes server-ca.crt, server.crt/.key (SAN localhost, 127.0.0.1) and device-ca.crt/.key into dir.
TestPki make_test_pki(const std::string& dir);

// Issues a client certificate signed by the device CA in dir: <out_dir>/<crt_name>, <key_name>.
void issue_client_certificate(const std::string& pki_dir, const std::string& common_name,
                              const std::string& crt_path, const std::string& key_path);

}  // namespace mqota::test
