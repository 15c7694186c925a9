#include <gtest/gtest.h>

#include "ota_agent/image_format.h"
#include "support/test_image.h"

namespace mqota {
namespace {

using test::make_test_image;
using test::TestImageSpec;

TEST(ImageFormat, OffsetsMatchEspIdfStructs) {
    // esp_image_header_t is 24 bytes (static assert in esp_app_format.h), the segment header 8,
    // esp_app_desc_t 256 with version at +16, project_name at +48, idf_ver at +112.
    EXPECT_EQ(kAppDescOffset, 32u);
    EXPECT_EQ(kVersionOffset, 48u);
    EXPECT_EQ(kProjectNameOffset, 80u);
    EXPECT_EQ(kIdfVersionOffset, 144u);
    EXPECT_EQ(kImagePrefixBytes, 288u);
}

TEST(ImageFormat, ReadsTheAppDescription) {
    TestImageSpec spec;
    spec.project = "thermostat";
    spec.version = "1.3.0-rc.2";
    spec.chip_id = 0x0009;
    spec.secure_version = 7;
    const auto img = make_test_image(spec);
    ImageDescription d;
    ASSERT_EQ(parse_image_prefix(img.data(), img.size(), &d), ImageCheck::ok);
    EXPECT_EQ(d.chip_id, 0x0009);
    EXPECT_STREQ(chip_name(d.chip_id), "esp32s3");
    EXPECT_EQ(d.app.secure_version, 7u);
    EXPECT_STREQ(d.app.version, "1.3.0-rc.2");
    EXPECT_STREQ(d.app.project_name, "thermostat");
    EXPECT_STREQ(d.app.idf_ver, "v5.5.5");
}

TEST(ImageFormat, TerminatesFieldsThatFillTheirArray) {
    TestImageSpec spec;
    spec.project = std::string(32, 'p');  // no NUL inside the 32-byte field
    spec.version = std::string(32, '9');
    const auto img = make_test_image(spec);
    ImageDescription d;
    ASSERT_EQ(parse_image_prefix(img.data(), img.size(), &d), ImageCheck::ok);
    EXPECT_EQ(std::string(d.app.project_name), std::string(32, 'p'));
    EXPECT_EQ(std::string(d.app.version), std::string(32, '9'));
}

TEST(ImageFormat, RejectsWhatIsNotAnAppImage) {
    auto img = make_test_image(TestImageSpec{});
    ImageDescription d;
    EXPECT_EQ(parse_image_prefix(img.data(), kImagePrefixBytes - 1, &d), ImageCheck::too_short);
    EXPECT_EQ(parse_image_prefix(nullptr, 0, &d), ImageCheck::too_short);
    auto bad_magic = img;
    bad_magic[0] = 0xE8;
    EXPECT_EQ(parse_image_prefix(bad_magic.data(), bad_magic.size(), &d), ImageCheck::bad_image_magic);
    auto bad_desc = img;
    bad_desc[kAppDescOffset] ^= 0xFF;
    EXPECT_EQ(parse_image_prefix(bad_desc.data(), bad_desc.size(), &d), ImageCheck::bad_app_desc_magic);
}

TEST(ImageFormat, KnowsTheChipIds) {
    EXPECT_STREQ(chip_name(0x0000), "esp32");
    EXPECT_STREQ(chip_name(0x0005), "esp32c3");
    EXPECT_STREQ(chip_name(0x0017), "esp32c5");
    EXPECT_STREQ(chip_name(0x0014), "esp32c61");
    EXPECT_EQ(chip_name(0xFFFF), nullptr);
}

}  // namespace
}  // namespace mqota
