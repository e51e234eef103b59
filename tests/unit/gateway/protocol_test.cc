// Parsing of WebSocket request frames.
#include "gateway/protocol.h"

#include <gtest/gtest.h>

#include <string>

namespace smithers::gateway {
namespace {

TEST(ProtocolTest, AcceptsARequestAndDefaultsParams) {
  RequestFrame f = ParseRequestFrame(R"({"type":"req","id":"7","method":"getRun"})", 1024, 64);
  ASSERT_TRUE(f.ok) << f.error_message;
  EXPECT_EQ(f.id, "7");
  EXPECT_EQ(f.method, "getRun");
  EXPECT_EQ(f.params, Json::object());
  f = ParseRequestFrame(R"({"type":"req","id":3,"method":"x","params":{"a":1}})", 1024, 64);
  ASSERT_TRUE(f.ok);
  EXPECT_EQ(f.id, 3);
  EXPECT_EQ(f.params, Json({{"a", 1}}));
}

TEST(ProtocolTest, RefusesWhatIsNotARequestKeepingTheIdWhenThereIsOne) {
  for (const char* bad :
       {"{not json", "[1,2]", R"({"type":"res","id":"1","method":"m"})",
        R"({"type":"req","method":"m"})", R"({"type":"req","id":"1"})",
        R"({"type":"req","id":"1","method":5})", R"({"type":"req","id":{"x":1},"method":"m"})"}) {
    RequestFrame f = ParseRequestFrame(bad, 1024, 64);
    EXPECT_FALSE(f.ok) << bad;
    EXPECT_EQ(f.error_code, "InvalidRequest") << bad;
  }
  RequestFrame f =
      ParseRequestFrame(R"({"type":"req","id":"9","method":"m","params":[1]})", 1024, 64);
  EXPECT_FALSE(f.ok);
  EXPECT_EQ(f.id, "9");
  EXPECT_EQ(f.error_message, "params must be a JSON object");
}

TEST(ProtocolTest, AnOversizedFrameIsPayloadTooLargeWithItsId) {
  std::string big =
      R"({"type":"req","id":"42","method":"m","params":{"s":")" + std::string(2000, 'x') + R"("}})";
  RequestFrame f = ParseRequestFrame(big, 1000, 64);
  EXPECT_FALSE(f.ok);
  EXPECT_EQ(f.error_code, "PayloadTooLarge");
  EXPECT_EQ(f.id, "42");
  EXPECT_TRUE(ParseRequestFrame(big, big.size(), 64).ok);
}

TEST(ProtocolTest, AFrameTooDeepIsRefusedBeforeItIsParsed) {
  auto frame = [](int value_depth) {
    return R"({"type":"req","id":"5","method":"launchRun","params":{"input":)" +
           std::string(value_depth, '[') + std::string(value_depth, ']') + "}}";
  };
  // A value in params may nest exactly the limit.
  RequestFrame at = ParseRequestFrame(frame(64), 1 << 20, 64);
  EXPECT_TRUE(at.ok) << at.error_message;
  RequestFrame over = ParseRequestFrame(frame(65), 1 << 20, 64);
  EXPECT_FALSE(over.ok);
  EXPECT_EQ(over.error_code, "InvalidInput");
  EXPECT_NE(over.error_message.find("$.params.input"), std::string::npos) << over.error_message;
  EXPECT_NE(over.error_message.find("max_json_depth"), std::string::npos) << over.error_message;
  // 100,000 levels: refused, no stack overflow; oversized and deep: not parsed.
  RequestFrame huge = ParseRequestFrame(frame(100000), 1 << 20, 64);
  EXPECT_EQ(huge.error_code, "InvalidInput");
  EXPECT_EQ(ParseRequestFrame(frame(100000), 1000, 64).error_code, "PayloadTooLarge");
}

TEST(ProtocolTest, ConnectNegotiatesProtocolOneAndReadsTheToken) {
  ConnectRequest c = ParseConnect(
      Json::parse(R"({"minProtocol":1,"maxProtocol":3,"auth":{"token":"smithers_x"}})"));
  ASSERT_TRUE(c.ok) << c.error_message;
  EXPECT_EQ(c.token, "smithers_x");
  c = ParseConnect(Json::parse(R"({"minProtocol":0,"maxProtocol":1,"auth":null})"));
  ASSERT_TRUE(c.ok) << c.error_message;
  EXPECT_EQ(c.token, "");
  c = ParseConnect(Json::parse(R"({"minProtocol":1,"maxProtocol":1,"auth":{"token":null}})"));
  EXPECT_TRUE(c.ok) << c.error_message;
}

TEST(ProtocolTest, ConnectRefusesRangesWithoutOneWithoutWrapping) {
  for (const char* offer :
       {R"({"minProtocol":2,"maxProtocol":3})", R"({"minProtocol":0,"maxProtocol":0})",
        R"({"minProtocol":4294967297,"maxProtocol":4294967297})",
        R"({"minProtocol":-4294967295,"maxProtocol":0})",
        R"({"minProtocol":18446744073709551615,"maxProtocol":18446744073709551615})",
        R"({"minProtocol":-9223372036854775808,"maxProtocol":-1})"}) {
    ConnectRequest c = ParseConnect(Json::parse(offer));
    EXPECT_FALSE(c.ok) << offer;
    EXPECT_EQ(c.error_code, "PROTOCOL_UNSUPPORTED") << offer;
  }
}

TEST(ProtocolTest, ConnectRefusesMalformedParamsWithoutThrowing) {
  for (const char* params :
       {"[]", "null", R"({"maxProtocol":1})", R"({"minProtocol":1})",
        R"({"minProtocol":1.0,"maxProtocol":1})", R"({"minProtocol":"1","maxProtocol":1})",
        R"({"minProtocol":1,"maxProtocol":1,"auth":"token"})",
        R"({"minProtocol":1,"maxProtocol":1,"auth":{"token":5}})",
        R"({"minProtocol":1,"maxProtocol":1,"auth":{"token":["a"]}})"}) {
    ConnectRequest c = ParseConnect(Json::parse(params));
    EXPECT_FALSE(c.ok) << params;
    EXPECT_EQ(c.error_code, "INVALID_REQUEST") << params;
    EXPECT_FALSE(c.error_message.empty()) << params;
  }
}

}  // namespace
}  // namespace smithers::gateway
