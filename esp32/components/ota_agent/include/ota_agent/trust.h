// What the device trusts beyond TLS (docs/security.md): update commands signed with the server's
// command key, and images carrying an ESP-IDF Secure Boot v2 signature block made by a key whose
// digest the device trusts. The rules are here, portable; the cryptography is the port's
// (OpenSSL on Linux, mbedTLS on ESP-IDF) behind TrustPort.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ota_agent/limits.h"
#include "ota_agent/protocol.h"

namespace mqota {

class DevicePort;

class TrustPort {
public:
    // Wall-clock Unix seconds; false while the clock is not set (before SNTP on a chip).
    virtual bool unix_time(uint64_t* seconds) = 0;
    // ECDSA P-256 over SHA-256 of message with the command key the device was provisioned with.
    virtual bool verify_command_signature(const uint8_t* message, size_t len, const uint8_t* der, size_t der_len) = 0;
    // Secure Boot v2 primitives, the arguments as the signature block stores them (little-endian):
    // RSA-3072 PSS (MGF1-SHA256, salt 32) of a SHA-256 digest ...
    virtual bool verify_rsa3072_pss(const uint8_t n_le[384], uint32_t e, const uint8_t digest[kSha256Bytes],
                                    const uint8_t signature_le[384]) = 0;
    // ... and ECDSA P-256 of a SHA-256 digest: point X‖Y, signature r‖s.
    virtual bool verify_ecdsa_p256(const uint8_t point_le[64], const uint8_t digest[kSha256Bytes],
                                   const uint8_t rs_le[64]) = 0;
    virtual void sha256(const uint8_t* data, size_t len, uint8_t digest[kSha256Bytes]) = 0;

protected:
    ~TrustPort() = default;
};

// ---- signed commands

enum class CommandTrust : uint8_t {
    ok,
    unsigned_command,  // no `sig`, or no `expires`
    wrong_device,      // `deviceId` names another device
    expired,           // `expires` has passed
    bad_signature,     // not the command key's signature over this command for this device
};

// The status error code for a refusal ("unsigned-command", "command-expired", ...).
const char* error_code(CommandTrust trust);

// Checks a decoded update command. `clock_unknown` is set when the expiry could not be checked.
CommandTrust check_command(TrustPort& trust, const char* device_id, const Command& command, bool* clock_unknown,
                           char* reason, size_t reason_cap);

// ---- signed images (Secure Boot v2 signature sector)

constexpr size_t kSignatureSectorBytes = 4096;
constexpr size_t kSignatureBlockBytes = 1216;
constexpr size_t kMaxSignatureBlocks = 3;

struct TrustedKeyDigests {
    const uint8_t (*digests)[kSha256Bytes] = nullptr;
    size_t count = 0;
};

// zlib's CRC-32 (the signature block's block_crc, esp_rom_crc32_le(0, ...)).
uint32_t crc32_le(const uint8_t* data, size_t len);

// Verifies the signature sector of the image of `image_size` bytes in the passive slot: some block
// whose key digest is trusted must sign the SHA-256 of everything before the sector, as the
// ESP-IDF bootloader checks with Secure Boot v2. `block` is scratch of kSignatureBlockBytes.
// False with a reason when the image is unsigned, signed by an untrusted key, or the signature
// does not hold.
bool verify_image_signature(DevicePort& port, TrustPort& trust, uint32_t image_size, const TrustedKeyDigests& keys,
                            uint8_t* block, char* reason, size_t reason_cap);

}  // namespace mqota
