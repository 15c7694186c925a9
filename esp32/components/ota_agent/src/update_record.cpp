#include "ota_agent/update_record.h"

#include <string.h>

namespace mqota {
namespace {

constexpr uint8_t kMagic[3] = {'M', 'Q', 'R'};
constexpr uint8_t kFormatVersion = 1;

class Writer {
public:
    Writer(uint8_t* out, size_t cap) : out_(out), cap_(cap) {}
    void u8(uint8_t v) { bytes(&v, 1); }
    void u32(uint32_t v) {
        const uint8_t b[4] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8),
                              static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 24)};
        bytes(b, 4);
    }
    void bytes(const void* p, size_t n) {
        if (!ok_ || n > cap_ - len_) {
            ok_ = false;
            return;
        }
        memcpy(out_ + len_, p, n);
        len_ += n;
    }
    void str(const char* s, size_t max_len) {
        const size_t n = strnlen(s, max_len);
        u8(static_cast<uint8_t>(n));
        bytes(s, n);
    }
    size_t finish() {
        u32(crc32_ieee(0, out_, ok_ ? len_ : 0));
        return ok_ ? len_ : 0;
    }

private:
    uint8_t* out_;
    size_t cap_;
    size_t len_ = 0;
    bool ok_ = true;
};

class Reader {
public:
    Reader(const uint8_t* in, size_t len) : in_(in), len_(len) {}
    uint8_t u8() {
        uint8_t v = 0;
        bytes(&v, 1);
        return v;
    }
    uint32_t u32() {
        uint8_t b[4] = {};
        bytes(b, 4);
        return static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8 |
               static_cast<uint32_t>(b[2]) << 16 | static_cast<uint32_t>(b[3]) << 24;
    }
    void bytes(void* p, size_t n) {
        if (!ok_ || n > len_ - pos_) {
            ok_ = false;
            return;
        }
        memcpy(p, in_ + pos_, n);
        pos_ += n;
    }
    template <size_t N>
    void str(char (&out)[N]) {
        const size_t n = u8();
        if (n >= N) {
            ok_ = false;
        }
        bytes(out, ok_ ? n : 0);
        out[ok_ ? n : 0] = '\0';
        // A stored string never contains NUL: the encoder wrote strnlen() bytes.
        if (ok_ && memchr(out, '\0', n) != nullptr) {
            ok_ = false;
        }
    }
    bool ok() const { return ok_; }
    size_t pos() const { return pos_; }

private:
    const uint8_t* in_;
    size_t len_;
    size_t pos_ = 0;
    bool ok_ = true;
};

}  // namespace

uint32_t crc32_ieee(uint32_t crc, const uint8_t* data, size_t len) {
    crc = ~crc;
    for (size_t i = 0; i < len; ++i) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

size_t encode_update_record(const UpdateRecord& r, uint8_t* out, size_t cap) {
    Writer w(out, cap);
    w.bytes(kMagic, sizeof(kMagic));
    w.u8(kFormatVersion);
    w.u8(static_cast<uint8_t>(r.phase));
    w.u8(static_cast<uint8_t>(r.final_state));
    w.u8(r.final_reported ? 1 : 0);
    w.u8(r.attempts);
    w.u32(r.size);
    w.u32(r.offset);
    w.bytes(r.sha256, kSha256Bytes);
    w.str(r.update_id, kUpdateIdMax);
    w.str(r.target_version, kVersionMax);
    w.str(r.target_slot, kSlotLabelMax);
    w.str(r.url, kUrlMax);
    w.str(r.etag, kEtagMax);
    w.str(r.error, kErrorCodeMax);
    w.str(r.reason, kReasonMax);
    return w.finish();
}

bool decode_update_record(const uint8_t* data, size_t len, UpdateRecord* out) {
    if (data == nullptr || len < sizeof(kMagic) + 1 + 4) {
        return false;
    }
    const size_t body = len - 4;
    const uint32_t stored_crc = static_cast<uint32_t>(data[body]) |
                                static_cast<uint32_t>(data[body + 1]) << 8 |
                                static_cast<uint32_t>(data[body + 2]) << 16 |
                                static_cast<uint32_t>(data[body + 3]) << 24;
    if (crc32_ieee(0, data, body) != stored_crc) {
        return false;
    }
    if (memcmp(data, kMagic, sizeof(kMagic)) != 0 || data[sizeof(kMagic)] != kFormatVersion) {
        return false;
    }
    Reader in(data + sizeof(kMagic) + 1, body - sizeof(kMagic) - 1);
    UpdateRecord r{};
    const uint8_t phase = in.u8();
    const uint8_t final_state = in.u8();
    r.final_reported = in.u8() != 0;
    r.attempts = in.u8();
    r.size = in.u32();
    r.offset = in.u32();
    in.bytes(r.sha256, kSha256Bytes);
    in.str(r.update_id);
    in.str(r.target_version);
    in.str(r.target_slot);
    in.str(r.url);
    in.str(r.etag);
    in.str(r.error);
    in.str(r.reason);
    if (!in.ok() || in.pos() != body - sizeof(kMagic) - 1) {
        return false;
    }
    if (phase > static_cast<uint8_t>(RecordPhase::finished) ||
        final_state > static_cast<uint8_t>(UpdateState::rejected)) {
        return false;
    }
    r.phase = static_cast<RecordPhase>(phase);
    r.final_state = static_cast<UpdateState>(final_state);
    *out = r;
    return true;
}

}  // namespace mqota
