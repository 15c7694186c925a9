#include "ota_agent/trust.h"

#include <stdio.h>
#include <string.h>

#include "ota_agent/platform.h"

namespace mqota {
namespace {

// ets_secure_boot_sig_block_t (esp_rom/<chip>/include/<chip>/rom/secure_boot.h) and espsecure's
// generate_*_signature_block: magic, version, image digest, key part, signature, CRC.
constexpr uint8_t kBlockMagic = 0xE7;
constexpr uint8_t kVersionRsa = 0x02;
constexpr uint8_t kVersionEcdsa = 0x03;
constexpr uint8_t kCurveP256 = 2;
constexpr size_t kCrcCovered = 1196;
constexpr size_t kKeyAt = 36;
constexpr size_t kRsaKeyPart = 384 + 4 + 384 + 4;  // n, e, rinv, m'
constexpr size_t kEcdsaKeyPart = 1 + 64;           // curve id, X, Y

uint32_t read_le32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
           static_cast<uint32_t>(p[3]) << 24;
}

void short_hex(const uint8_t* digest, char out[17]) {
    for (int i = 0; i < 8; ++i) {
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    }
}

}  // namespace

const char* error_code(CommandTrust trust) {
    switch (trust) {
        case CommandTrust::ok: return "";
        case CommandTrust::unsigned_command: return "unsigned-command";
        case CommandTrust::wrong_device: return "wrong-device";
        case CommandTrust::expired: return "command-expired";
        case CommandTrust::bad_signature: return "command-signature-invalid";
    }
    return "?";
}

CommandTrust check_command(TrustPort& trust, const char* device_id, const Command& c, bool* clock_unknown,
                           char* reason, size_t cap) {
    *clock_unknown = false;
    const CommandSignature& sig = c.signature;
    if (!sig.present || !sig.has_expires) {
        snprintf(reason, cap, "update command is not signed; this device acts only on commands signed with its command key");
        return CommandTrust::unsigned_command;
    }
    if (sig.device_id[0] != '\0' && strcmp(sig.device_id, device_id) != 0) {
        snprintf(reason, cap, "update command is for device %s, not %s", sig.device_id, device_id);
        return CommandTrust::wrong_device;
    }
    uint64_t now = 0;
    if (!trust.unix_time(&now)) {
        *clock_unknown = true;  // the signature still binds the command to this device and image
    } else if (now > sig.expires) {
        snprintf(reason, cap, "update command expired at %llu (Unix time), now %llu",
                 static_cast<unsigned long long>(sig.expires), static_cast<unsigned long long>(now));
        return CommandTrust::expired;
    }
    // The longest text: the fixed fields plus every bounded string at its limit.
    char text[17 + kDeviceIdMax + kUpdateIdMax + kTypeMax + 2 * kVersionMax + 2 * kSha256Bytes + 10 + 20 + 9];
    const size_t len = command_signing_text(device_id, c, text, sizeof(text));
    if (len == 0 || !trust.verify_command_signature(reinterpret_cast<const uint8_t*>(text), len, sig.der, sig.der_len)) {
        snprintf(reason, cap, "update command signature does not hold for this device: not signed with the command key, or changed after signing");
        return CommandTrust::bad_signature;
    }
    return CommandTrust::ok;
}

uint32_t crc32_le(const uint8_t* data, size_t len) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; ++i) {
        crc ^= data[i];
        for (int k = 0; k < 8; ++k) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

bool verify_image_signature(DevicePort& port, TrustPort& trust, uint32_t image_size, const TrustedKeyDigests& keys,
                            uint8_t* block, char* reason, size_t cap) {
    if (image_size < 2 * kSignatureSectorBytes || image_size % kSignatureSectorBytes != 0) {
        snprintf(reason, cap, "image carries no Secure Boot v2 signature sector (%u bytes is not a multiple of 4096)",
                 static_cast<unsigned>(image_size));
        return false;
    }
    const uint32_t signed_len = image_size - static_cast<uint32_t>(kSignatureSectorBytes);
    uint8_t image_digest[kSha256Bytes];
    if (!port.slot_sha256(signed_len, image_digest)) {
        snprintf(reason, cap, "could not read the passive slot back");
        return false;
    }
    int blocks = 0;
    char untrusted[17] = {};
    bool digest_mismatch = false;
    for (size_t i = 0; i < kMaxSignatureBlocks; ++i) {
        if (!port.slot_read(signed_len + static_cast<uint32_t>(i * kSignatureBlockBytes), block, kSignatureBlockBytes)) {
            snprintf(reason, cap, "could not read the signature sector");
            return false;
        }
        // Like ESP-IDF's validate_signature_block(): a wrong magic or CRC ends the blocks.
        if (block[0] != kBlockMagic || read_le32(block + kCrcCovered) != crc32_le(block, kCrcCovered)) {
            break;
        }
        ++blocks;
        const bool rsa = block[1] == kVersionRsa;
        const bool ecdsa = block[1] == kVersionEcdsa && block[2] == 0 && block[kKeyAt] == kCurveP256;
        if (!rsa && !ecdsa) {
            continue;
        }
        uint8_t key_digest[kSha256Bytes];
        trust.sha256(block + kKeyAt, rsa ? kRsaKeyPart : kEcdsaKeyPart, key_digest);
        bool trusted = false;
        for (size_t k = 0; k < keys.count && !trusted; ++k) {
            trusted = memcmp(keys.digests[k], key_digest, kSha256Bytes) == 0;
        }
        if (!trusted) {
            short_hex(key_digest, untrusted);
            continue;
        }
        if (memcmp(block + 4, image_digest, kSha256Bytes) != 0) {
            digest_mismatch = true;
            continue;
        }
        const bool ok = rsa ? trust.verify_rsa3072_pss(block + kKeyAt, read_le32(block + kKeyAt + 384), image_digest,
                                                       block + kKeyAt + kRsaKeyPart)
                            : trust.verify_ecdsa_p256(block + kKeyAt + 1, image_digest, block + kKeyAt + kEcdsaKeyPart);
        if (ok) {
            return true;
        }
        digest_mismatch = true;
    }
    if (blocks == 0) {
        snprintf(reason, cap, "image carries no valid Secure Boot v2 signature block");
    } else if (digest_mismatch) {
        snprintf(reason, cap, "the signature of a trusted key does not hold: the image or its signature was changed");
    } else {
        snprintf(reason, cap, "image is signed only by keys this device does not trust (key digest %s...)", untrusted);
    }
    return false;
}

}  // namespace mqota
