// schema::Sample: made-up values match their schema (`smithers check`).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "smithers/schema.h"

namespace smithers::schema {
namespace {

constexpr SampleFill kFills[] = {SampleFill::kLeast, SampleFill::kMost};

void ExpectFits(const Json& schema) {
  ASSERT_TRUE(CheckSchema(schema).ok()) << schema.dump();
  for (SampleFill fill : kFills) {
    const Json value = Sample(schema, fill);
    EXPECT_TRUE(Validate(schema, value).empty()) << schema.dump() << " -> " << value.dump() << ": "
                                                 << FormatViolations(Validate(schema, value));
  }
}

TEST(SampleTest, EveryBuilderFits) {
  const std::vector<Json> schemas = {
      String(),
      Number(),
      Integer(),
      Boolean(),
      Null(),
      Enum({"low", "high"}),
      Literal(Json{{"v", 1}}),
      Array(Integer()),
      Record(String()),
      Nullable(String()),
      Object({{"a", String()}, {"b", Optional(Integer())}, {"c", Nullable(Boolean())}}),
      Object({{"items", Array(Object({{"n", Number()}}))}}),
  };
  for (const Json& s : schemas) ExpectFits(s);
}

TEST(SampleTest, BoundsAreKept) {
  ExpectFits({{"type", "string"}, {"minLength", 10}});
  ExpectFits({{"type", "string"}, {"maxLength", 3}});
  ExpectFits({{"type", "integer"}, {"minimum", 5}, {"maximum", 9}});
  ExpectFits({{"type", "integer"}, {"exclusiveMinimum", 1}});
  ExpectFits({{"type", "integer"}, {"maximum", -3}});
  ExpectFits({{"type", "number"}, {"exclusiveMaximum", 0}});
  ExpectFits({{"type", "number"}, {"minimum", 0.25}});
  ExpectFits({{"type", "array"}, {"items", String()}, {"minItems", 2}});
  ExpectFits({{"type", "array"}, {"items", String()}, {"maxItems", 0}});
  ExpectFits({{"type", Json::array({"integer", "null"})}});
  ExpectFits({{"anyOf", Json::array({Integer(), String()})}});
}

TEST(SampleTest, LeastAndMost) {
  const Json s = Object({{"ok", Boolean()},
                         {"n", Integer()},
                         {"level", Enum({"low", "mid", "high"})},
                         {"tags", Array(String())},
                         {"note", Optional(String())},
                         {"by", Nullable(String())}});
  EXPECT_EQ(
      Sample(s, SampleFill::kLeast),
      (Json{{"ok", false}, {"n", 0}, {"level", "low"}, {"tags", Json::array()}, {"by", nullptr}}));
  EXPECT_EQ(Sample(s, SampleFill::kMost), (Json{{"ok", true},
                                                {"n", 1},
                                                {"level", "high"},
                                                {"tags", Json::array({"sample"})},
                                                {"note", "sample"},
                                                {"by", "sample"}}));
}

TEST(SampleTest, DefaultAndConstWin) {
  EXPECT_EQ(Sample({{"type", "string"}, {"default", "/srv"}}, SampleFill::kLeast), "/srv");
  EXPECT_EQ(Sample(Literal(7), SampleFill::kMost), 7);
  EXPECT_EQ(Sample(Json::object(), SampleFill::kLeast), nullptr);  // anything
  EXPECT_EQ(Sample(Json::object(), SampleFill::kMost), Json::object());
}

}  // namespace
}  // namespace smithers::schema
