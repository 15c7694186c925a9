// The device bundle written by `mqota device add <id> --type <t> --out <dir>`:
//   device.json  {"deviceId":"...","type":"thermostat","brokerUrl":"mqtts://host:8883"}
//   device.crt   client certificate (CN = device id), device.key its PKCS#8 key
//   ca.crt       the mqota server CA: verifies the broker and the HTTPS image server
//   command-key.pem  optional: the server's command key; with it, update commands must be signed
//   device.json "imageKeyDigests": optional Secure Boot v2 key digests (hex); with them, only
//                images signed by one of these keys are installed (docs/security.md)
#pragma once

#include <array>
#include <stdint.h>
#include <string>
#include <vector>

namespace mqota::linux_port {

struct DeviceBundle {
    std::string device_id;
    std::string type;
    std::string broker_url;
    std::string broker_host;
    int broker_port = 8883;
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
    std::string command_key_file;  // "" when the bundle has none
    std::vector<std::array<uint8_t, 32>> image_key_digests;
};

// A bundle made from the device's CSR has no device.key; then `own_key_file` (the key the device
// made, <state>/identity/device.key on Linux) is used, if given.
bool load_device_bundle(const std::string& dir, DeviceBundle* out, std::string* error, const std::string& own_key_file = "");

// "mqtts://host:port", "mqtts://[::1]:8883"; port defaults to 8883. Only TLS is accepted.
bool parse_broker_url(const std::string& url, std::string* host, int* port, std::string* error);

}  // namespace mqota::linux_port
