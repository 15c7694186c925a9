// Semantic Versioning 2.0.0 parsing and precedence (https://semver.org), as the server applies
// it with node-semver: a leading "v" is accepted, build metadata is ignored for precedence.
#pragma once

#include <stdint.h>

#include "ota_agent/limits.h"

namespace mqota {

struct SemVer {
    uint64_t major;
    uint64_t minor;
    uint64_t patch;
    // Dot-separated pre-release identifiers without the leading '-', "" for a release.
    char prerelease[kVersionMax + 1];
};

// Parses "1.2.3", "v1.2.3-rc.1+build.5". Rejects leading zeros in numeric identifiers
// (SemVer §2, §9), empty identifiers, whitespace and numbers above 2^53-1 (node-semver's
// limit, so both ends agree on what is a version).
bool semver_parse(const char* text, SemVer* out);

// Precedence per SemVer §11: <0 if a < b, 0 if equal precedence, >0 if a > b.
int semver_compare(const SemVer& a, const SemVer& b);

// Convenience for two strings; false when either does not parse.
bool semver_compare_text(const char* a, const char* b, int* result);

}  // namespace mqota
