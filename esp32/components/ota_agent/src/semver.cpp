#include "ota_agent/semver.h"

#include <string.h>

namespace mqota {
namespace {

constexpr uint64_t kMaxSafeInteger = 9007199254740991ull;  // 2^53 - 1, node-semver's MAX_SAFE_INTEGER

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_identifier_char(char c) {
    return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-';
}

// Parses a numeric core component at *p (SemVer §2: no leading zeros) and advances *p.
bool parse_number(const char** p, uint64_t* out) {
    const char* s = *p;
    if (!is_digit(*s)) {
        return false;
    }
    if (s[0] == '0' && is_digit(s[1])) {
        return false;
    }
    uint64_t value = 0;
    while (is_digit(*s)) {
        value = value * 10 + static_cast<uint64_t>(*s - '0');
        if (value > kMaxSafeInteger) {
            return false;
        }
        ++s;
    }
    *out = value;
    *p = s;
    return true;
}

// Validates dot-separated identifiers in [begin, end). Numeric pre-release identifiers must not
// have leading zeros (SemVer §9); build metadata identifiers may (SemVer §10).
bool valid_identifiers(const char* begin, const char* end, bool numeric_leading_zero_allowed) {
    if (begin == end) {
        return false;
    }
    const char* id = begin;
    while (id <= end) {
        const char* id_end = id;
        bool numeric = true;
        while (id_end < end && *id_end != '.') {
            if (!is_identifier_char(*id_end)) {
                return false;
            }
            numeric = numeric && is_digit(*id_end);
            ++id_end;
        }
        if (id_end == id) {
            return false;  // empty identifier: "1.0.0-a..b" or trailing dot
        }
        if (numeric && !numeric_leading_zero_allowed && id_end - id > 1 && id[0] == '0') {
            return false;
        }
        id = id_end + 1;
    }
    return true;
}

bool all_digits(const char* s, size_t len) {
    for (size_t i = 0; i < len; ++i) {
        if (!is_digit(s[i])) {
            return false;
        }
    }
    return true;
}

// Compares one pre-release identifier pair (SemVer §11.4.1-3). Numeric identifiers carry no
// leading zeros, so the longer one is larger and equal lengths compare as text.
int compare_identifier(const char* a, size_t a_len, const char* b, size_t b_len) {
    const bool a_num = all_digits(a, a_len);
    const bool b_num = all_digits(b, b_len);
    if (a_num && b_num) {
        if (a_len != b_len) {
            return a_len < b_len ? -1 : 1;
        }
        return memcmp(a, b, a_len);
    }
    if (a_num != b_num) {
        return a_num ? -1 : 1;  // numeric identifiers have lower precedence
    }
    const size_t n = a_len < b_len ? a_len : b_len;
    const int c = memcmp(a, b, n);  // ASCII order
    if (c != 0) {
        return c;
    }
    return a_len == b_len ? 0 : (a_len < b_len ? -1 : 1);
}

int sign(int v) { return v < 0 ? -1 : (v > 0 ? 1 : 0); }

}  // namespace

bool semver_parse(const char* text, SemVer* out) {
    if (text == nullptr || out == nullptr) {
        return false;
    }
    const char* p = text;
    if (*p == 'v') {
        ++p;
    }
    SemVer v{};
    if (!parse_number(&p, &v.major) || *p++ != '.' || !parse_number(&p, &v.minor) || *p++ != '.' ||
        !parse_number(&p, &v.patch)) {
        return false;
    }
    if (*p == '-') {
        const char* begin = ++p;
        while (*p != '\0' && *p != '+') {
            ++p;
        }
        if (!valid_identifiers(begin, p, false)) {
            return false;
        }
        const size_t len = static_cast<size_t>(p - begin);
        if (len >= sizeof(v.prerelease)) {
            return false;
        }
        memcpy(v.prerelease, begin, len);
        v.prerelease[len] = '\0';
    }
    if (*p == '+') {
        const char* begin = ++p;
        while (*p != '\0') {
            ++p;
        }
        if (!valid_identifiers(begin, p, true)) {
            return false;
        }
    }
    if (*p != '\0') {
        return false;
    }
    *out = v;
    return true;
}

int semver_compare(const SemVer& a, const SemVer& b) {
    if (a.major != b.major) {
        return a.major < b.major ? -1 : 1;
    }
    if (a.minor != b.minor) {
        return a.minor < b.minor ? -1 : 1;
    }
    if (a.patch != b.patch) {
        return a.patch < b.patch ? -1 : 1;
    }
    // SemVer §11.3: a pre-release version has lower precedence than the release.
    const bool a_pre = a.prerelease[0] != '\0';
    const bool b_pre = b.prerelease[0] != '\0';
    if (a_pre != b_pre) {
        return a_pre ? -1 : 1;
    }
    const char* pa = a.prerelease;
    const char* pb = b.prerelease;
    while (*pa != '\0' && *pb != '\0') {
        const char* ea = strchr(pa, '.');
        const char* eb = strchr(pb, '.');
        const size_t la = ea ? static_cast<size_t>(ea - pa) : strlen(pa);
        const size_t lb = eb ? static_cast<size_t>(eb - pb) : strlen(pb);
        const int c = compare_identifier(pa, la, pb, lb);
        if (c != 0) {
            return sign(c);
        }
        pa += la + (ea ? 1 : 0);
        pb += lb + (eb ? 1 : 0);
    }
    // SemVer §11.4.4: a larger set of identifiers has higher precedence if all before are equal.
    if (*pa == '\0' && *pb == '\0') {
        return 0;
    }
    return *pa == '\0' ? -1 : 1;
}

bool semver_compare_text(const char* a, const char* b, int* result) {
    SemVer va;
    SemVer vb;
    if (!semver_parse(a, &va) || !semver_parse(b, &vb)) {
        return false;
    }
    *result = semver_compare(va, vb);
    return true;
}

}  // namespace mqota
