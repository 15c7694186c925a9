#include <gtest/gtest.h>

#include <string>

#include "ota_agent/message_assembler.h"

namespace mqota {
namespace {

using Result = MessageAssembler::Result;

TEST(MessageAssembler, PassesASingleFragmentMessage) {
    MessageAssembler a;
    const std::string topic = "devices/d1/command";
    const std::string data = R"({"action":"none"})";
    ASSERT_EQ(a.add(topic.data(), topic.size(), data.data(), data.size(), 0, data.size()), Result::complete);
    EXPECT_STREQ(a.topic(), "devices/d1/command");
    EXPECT_EQ(std::string(a.payload(), a.payload_len()), data);
}

TEST(MessageAssembler, ReassemblesFragmentsLikeEspMqtt) {
    // esp-mqtt: the first MQTT_EVENT_DATA has the topic, later ones topic_len 0 and a growing
    // current_data_offset, all with total_data_len.
    MessageAssembler a;
    const std::string topic = "devices/d1/command";
    std::string data(3000, 'x');
    data[0] = '{';
    ASSERT_EQ(a.add(topic.data(), topic.size(), data.data(), 1024, 0, data.size()), Result::incomplete);
    ASSERT_EQ(a.add(nullptr, 0, data.data() + 1024, 1024, 1024, data.size()), Result::incomplete);
    ASSERT_EQ(a.add(nullptr, 0, data.data() + 2048, 952, 2048, data.size()), Result::complete);
    EXPECT_EQ(std::string(a.payload(), a.payload_len()), data);
    EXPECT_STREQ(a.topic(), "devices/d1/command");
}

TEST(MessageAssembler, DropsOversizeAndOutOfOrderFragments) {
    MessageAssembler a;
    const std::string topic = "t";
    std::string big(kMaxPayloadBytes + 1, 'x');
    EXPECT_EQ(a.add(topic.data(), 1, big.data(), 1024, 0, big.size()), Result::dropped);
    EXPECT_EQ(a.add(nullptr, 0, big.data(), 1024, 1024, big.size()), Result::dropped);

    std::string data(2048, 'y');
    ASSERT_EQ(a.add(topic.data(), 1, data.data(), 1024, 0, data.size()), Result::incomplete);
    EXPECT_EQ(a.add(nullptr, 0, data.data(), 512, 1536, data.size()), Result::dropped) << "gap";
    EXPECT_EQ(a.add(nullptr, 0, data.data(), 512, 1024, data.size()), Result::dropped) << "no message active";
    ASSERT_EQ(a.add(topic.data(), 1, data.data(), 1024, 0, data.size()), Result::incomplete);
    EXPECT_EQ(a.add(nullptr, 0, data.data(), 2000, 1024, data.size()), Result::dropped) << "overruns total";
}

TEST(MessageAssembler, ANewFirstFragmentReplacesAnUnfinishedMessage) {
    MessageAssembler a;
    const std::string topic = "t";
    std::string first(2048, 'a');
    std::string second = "{}";
    ASSERT_EQ(a.add(topic.data(), 1, first.data(), 1024, 0, first.size()), Result::incomplete);
    ASSERT_EQ(a.add(topic.data(), 1, second.data(), 2, 0, 2), Result::complete);
    EXPECT_EQ(std::string(a.payload(), a.payload_len()), "{}");
}

TEST(MessageAssembler, DropsAMissingOrOverlongTopic) {
    MessageAssembler a;
    const std::string data = "{}";
    EXPECT_EQ(a.add(nullptr, 0, data.data(), 2, 0, 2), Result::dropped);
    const std::string topic(kTopicMax + 1, 't');
    EXPECT_EQ(a.add(topic.data(), topic.size(), data.data(), 2, 0, 2), Result::dropped);
}

}  // namespace
}  // namespace mqota
