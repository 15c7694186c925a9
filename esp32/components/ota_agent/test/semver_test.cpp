#include <gtest/gtest.h>

#include "ota_agent/semver.h"

namespace mqota {
namespace {

int cmp(const char* a, const char* b) {
    int c = 99;
    EXPECT_TRUE(semver_compare_text(a, b, &c)) << a << " vs " << b;
    return c;
}

TEST(SemVer, ParsesCoreVersionAndLeadingV) {
    SemVer v;
    ASSERT_TRUE(semver_parse("1.2.3", &v));
    EXPECT_EQ(v.major, 1u);
    EXPECT_EQ(v.minor, 2u);
    EXPECT_EQ(v.patch, 3u);
    EXPECT_STREQ(v.prerelease, "");
    ASSERT_TRUE(semver_parse("v10.20.30", &v));
    EXPECT_EQ(v.major, 10u);
}

TEST(SemVer, KeepsPrereleaseAndDropsBuildMetadata) {
    SemVer v;
    ASSERT_TRUE(semver_parse("1.0.0-rc.1+build.5", &v));
    EXPECT_STREQ(v.prerelease, "rc.1");
    ASSERT_TRUE(semver_parse("1.0.0+20130313144700", &v));
    EXPECT_STREQ(v.prerelease, "");
    ASSERT_TRUE(semver_parse("1.0.0-x-y-z.--", &v));
    EXPECT_STREQ(v.prerelease, "x-y-z.--");
    ASSERT_TRUE(semver_parse("1.0.0+001", &v)) << "build metadata may have leading zeros (SemVer 10)";
}

TEST(SemVer, RejectsInvalidText) {
    SemVer v;
    for (const char* bad : {"", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "1.2.3-", "1.2.3+",
                            "1.2.3-01", "1.2.3-a..b", "1.2.3-a.", "1.2.3-é", "1.2.3 ", " 1.2.3", "V1.2.3",
                            "vv1.2.3", "1.2.3+a..b", "-1.2.3", "1.2.x", "9007199254740992.0.0", "a.b.c"}) {
        EXPECT_FALSE(semver_parse(bad, &v)) << '"' << bad << '"';
    }
    EXPECT_FALSE(semver_parse(nullptr, &v));
    EXPECT_TRUE(semver_parse("9007199254740991.0.0", &v)) << "Number.MAX_SAFE_INTEGER is allowed";
}

TEST(SemVer, RejectsPrereleaseLongerThanTheImageField) {
    SemVer v;
    EXPECT_TRUE(semver_parse("1.0.0-aaaaaaaaaaaaaaaaaaaaaaaaa", &v));
    EXPECT_FALSE(semver_parse("1.0.0-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &v));
}

TEST(SemVer, OrdersCoreNumbersNumerically) {
    EXPECT_LT(cmp("1.9.0", "1.10.0"), 0);
    EXPECT_LT(cmp("1.2.3", "2.0.0"), 0);
    EXPECT_GT(cmp("1.2.10", "1.2.9"), 0);
    EXPECT_EQ(cmp("v1.2.3", "1.2.3"), 0);
}

TEST(SemVer, FollowsTheSpecPrecedenceExample) {
    // SemVer 11.4: 1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-alpha.beta < 1.0.0-beta < 1.0.0-beta.2 <
    // 1.0.0-beta.11 < 1.0.0-rc.1 < 1.0.0
    const char* ordered[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
                             "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"};
    constexpr size_t n = sizeof(ordered) / sizeof(ordered[0]);
    for (size_t i = 0; i < n; ++i) {
        for (size_t j = 0; j < n; ++j) {
            const int c = cmp(ordered[i], ordered[j]);
            if (i < j) {
                EXPECT_LT(c, 0) << ordered[i] << " < " << ordered[j];
            } else if (i > j) {
                EXPECT_GT(c, 0) << ordered[i] << " > " << ordered[j];
            } else {
                EXPECT_EQ(c, 0);
            }
        }
    }
}

TEST(SemVer, IgnoresBuildMetadataForPrecedence) {
    EXPECT_EQ(cmp("1.0.0+a", "1.0.0+b"), 0);
    EXPECT_EQ(cmp("1.0.0-rc.1+x", "1.0.0-rc.1"), 0);
    EXPECT_LT(cmp("1.0.0-rc.1+zzz", "1.0.0"), 0);
}

TEST(SemVer, ComparesLongNumericIdentifiersWithoutOverflow) {
    EXPECT_LT(cmp("1.0.0-99999999999999999999", "1.0.0-100000000000000000000"), 0);
    EXPECT_LT(cmp("1.0.0-99999999999999999999", "1.0.0-a"), 0) << "numeric < alphanumeric";
}

TEST(SemVer, ComparisonFailsForInvalidInput) {
    int c = 0;
    EXPECT_FALSE(semver_compare_text("1.0", "1.0.0", &c));
    EXPECT_FALSE(semver_compare_text("1.0.0", "latest", &c));
}

}  // namespace
}  // namespace mqota
