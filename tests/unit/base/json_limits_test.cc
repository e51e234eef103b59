// The JSON depth limit: the text scanner and the value check agree, count
// only arrays and objects, skip strings (brackets and escaped quotes inside
// them), accept exactly the limit, refuse one more with the path, and take
// 100,000 levels without recursing.
#include "base/json_limits.h"

#include <gtest/gtest.h>

#include <string>

namespace smithers::base {
namespace {

std::string Nested(int depth, const std::string& open = "[", const std::string& close = "]",
                   const std::string& inner = "") {
  std::string s;
  for (int i = 0; i < depth; ++i) s += open;
  s += inner;
  for (int i = 0; i < depth; ++i) s += close;
  return s;
}

TEST(JsonDepth, ScalarsAndFlatDocuments) {
  EXPECT_TRUE(CheckJsonDepth("1", 1).ok());
  EXPECT_TRUE(CheckJsonDepth("\"[[[[\"", 1).ok());
  EXPECT_TRUE(CheckJsonDepth("[]", 1).ok());
  EXPECT_TRUE(CheckJsonDepth("{}", 1).ok());
  EXPECT_TRUE(CheckJsonDepth("[1,2,3,{}]", 2).ok());
  EXPECT_FALSE(CheckJsonDepth("[1,2,3,{}]", 1).ok());
  EXPECT_TRUE(CheckJsonValueDepth(Json(5), 1).ok());
  EXPECT_TRUE(CheckJsonValueDepth(Json::array(), 1).ok());
  EXPECT_FALSE(CheckJsonValueDepth(Json::array({Json::object()}), 1).ok());
}

TEST(JsonDepth, ExactlyAtTheLimitAndOneMore) {
  for (int limit : {1, 2, 64, 65, 200}) {
    EXPECT_TRUE(CheckJsonDepth(Nested(limit), limit).ok()) << limit;
    EXPECT_TRUE(CheckJsonDepth(Nested(limit, "{\"a\":", "}", "1"), limit).ok()) << limit;
    Status s = CheckJsonDepth(Nested(limit + 1), limit);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << limit;
    EXPECT_NE(s.message().find("deeper than " + std::to_string(limit) + " levels"),
              std::string::npos)
        << s.message();
    Json at = Json::parse(Nested(limit));
    Json over = Json::parse(Nested(limit + 1));
    EXPECT_TRUE(CheckJsonValueDepth(at, limit).ok()) << limit;
    EXPECT_FALSE(CheckJsonValueDepth(over, limit).ok()) << limit;
  }
}

TEST(JsonDepth, StringsWithBracketsAndEscapedQuotes) {
  // Brackets inside strings never count; an escaped quote does not end one.
  std::string tricky = R"({"a":"[[[[{{{{","b":"\"[[[[","c":"\\","d":["]]]]\"]]"]})";
  EXPECT_TRUE(CheckJsonDepth(tricky, 2).ok());
  EXPECT_FALSE(CheckJsonDepth(tricky, 1).ok());
  EXPECT_TRUE(CheckJsonValueDepth(Json::parse(tricky), 2).ok());
  // A key full of brackets, then a real nest under it.
  std::string key = R"({"[[\"{{": [[1]]})";
  EXPECT_TRUE(CheckJsonDepth(key, 3).ok());
  Status s = CheckJsonDepth(key, 2);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(R"(["[[\?{{"][0])"), std::string::npos) << s.message();
  // An unterminated string swallows the rest: nothing after it counts.
  EXPECT_TRUE(CheckJsonDepth("[\"" + Nested(100), 1).ok());
}

TEST(JsonDepth, ThePathOfTheFirstLevelTooDeep) {
  std::string doc = R"({"params":{"input":{"list":[0,1,[[[1]]]]}}})";
  Status s = CheckJsonDepth(doc, 5, "the request");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "the request nests deeper than 5 levels of arrays and objects (max_json_depth) at "
            "$.params.input.list[2][0]");
  Status v = CheckJsonValueDepth(Json::parse(doc), 5, "the request");
  EXPECT_EQ(v.message(), s.message());
}

TEST(JsonDepth, AHundredThousandLevelsWithoutRecursion) {
  std::string deep = Nested(100000);
  Status s = CheckJsonDepth(deep, 64);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(CheckJsonDepth(deep, 100000).ok());
  std::string objects = Nested(100000, "{\"x\":", "}", "null");
  EXPECT_FALSE(CheckJsonDepth(objects, 64).ok());
  // nlohmann parses and destroys iteratively; the value check is iterative too.
  Json parsed = Json::parse(deep);
  EXPECT_FALSE(CheckJsonValueDepth(parsed, 64).ok());
  EXPECT_TRUE(CheckJsonValueDepth(parsed, 100000).ok());
  // Long paths are shortened.
  EXPECT_LT(s.message().size(), 400u);
}

TEST(JsonDepth, ParseJsonLimited) {
  Result<Json> ok = ParseJsonLimited(R"({"a":[1]})", 2, "--input");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)["a"][0], 1);
  Result<Json> deep = ParseJsonLimited(Nested(3), 2, "--input");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("--input nests deeper than 2"), std::string::npos);
  Result<Json> bad = ParseJsonLimited("{\"a\":", 2, "--data");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--data is not valid JSON: parse error"), std::string::npos)
      << bad.status().message();
}

TEST(JsonDepth, TheProcessWideLimit) {
  EXPECT_EQ(MaxJsonDepth(), kDefaultMaxJsonDepth);
  SetMaxJsonDepth(0);
  EXPECT_EQ(MaxJsonDepth(), 1);
  SetMaxJsonDepth(1 << 30);
  EXPECT_EQ(MaxJsonDepth(), kMaxJsonDepthCeiling);
  SetMaxJsonDepth(kDefaultMaxJsonDepth);
  EXPECT_EQ(MaxJsonDepth(), 64);
}

}  // namespace
}  // namespace smithers::base
