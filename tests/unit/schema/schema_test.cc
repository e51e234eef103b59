#include "smithers/schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace smithers::schema {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A hand-written matcher rather than MATCHER_P2: the test links gtest but not
// gmock's library, which the macro's description formatting needs.
class ViolationMatcher : public ::testing::MatcherInterface<const Violation&> {
 public:
  ViolationMatcher(std::string path, std::string message_part)
      : path_(std::move(path)), message_part_(std::move(message_part)) {}

  bool MatchAndExplain(const Violation& v,
                       ::testing::MatchResultListener* listener) const override {
    *listener << "which is {" << v.path << ", " << v.message << "}";
    return v.path == path_ && v.message.find(message_part_) != std::string::npos;
  }
  void DescribeTo(std::ostream* os) const override {
    *os << "violation at " << path_ << " mentioning \"" << message_part_ << "\"";
  }

 private:
  std::string path_;
  std::string message_part_;
};

::testing::Matcher<const Violation&> ViolationIs(std::string path, std::string message_part) {
  return ::testing::MakeMatcher(new ViolationMatcher(std::move(path), std::move(message_part)));
}

// Like ::testing::IsEmpty(), which also needs gmock's library in unoptimised
// builds; this one prints the violations when it fails.
class NoViolationsMatcher : public ::testing::MatcherInterface<const std::vector<Violation>&> {
 public:
  bool MatchAndExplain(const std::vector<Violation>& v,
                       ::testing::MatchResultListener* listener) const override {
    *listener << "which is \"" << FormatViolations(v) << "\"";
    return v.empty();
  }
  void DescribeTo(std::ostream* os) const override { *os << "has no violations"; }
};

::testing::Matcher<const std::vector<Violation>&> NoViolations() {
  return ::testing::MakeMatcher(new NoViolationsMatcher());
}

// Paths of every violation, in report order.
std::vector<std::string> Paths(const std::vector<Violation>& violations) {
  std::vector<std::string> out;
  for (const Violation& v : violations) out.push_back(v.path);
  return out;
}

Json Parse(const char* text) { return Json::parse(text); }

// ---------------------------------------------------------------- builders

TEST(BuildersTest, Scalars) {
  EXPECT_EQ(String(), Parse(R"({"type":"string"})"));
  EXPECT_EQ(Number(), Parse(R"({"type":"number"})"));
  EXPECT_EQ(Integer(), Parse(R"({"type":"integer"})"));
  EXPECT_EQ(Boolean(), Parse(R"({"type":"boolean"})"));
  EXPECT_EQ(Null(), Parse(R"({"type":"null"})"));
}

TEST(BuildersTest, EnumLiteralArrayRecord) {
  EXPECT_EQ(Enum({"a", "b"}), Parse(R"({"type":"string","enum":["a","b"]})"));
  EXPECT_EQ(Literal(42), Parse(R"({"const":42})"));
  EXPECT_EQ(Literal(Parse(R"([1,"x"])")), Parse(R"({"const":[1,"x"]})"));
  EXPECT_EQ(Array(String()), Parse(R"({"type":"array","items":{"type":"string"}})"));
  EXPECT_EQ(Record(Integer()),
            Parse(R"({"type":"object","additionalProperties":{"type":"integer"}})"));
}

TEST(BuildersTest, ObjectRequiredKeepsGivenOrderAndSkipsOptional) {
  Json s = Object({{"zeta", String()}, {"alpha", Optional(Integer())}, {"mid", Boolean()}});
  EXPECT_EQ(s, Parse(R"({
    "type": "object",
    "properties": {
      "zeta": {"type": "string"},
      "alpha": {"type": "integer"},
      "mid": {"type": "boolean"}
    },
    "required": ["zeta", "mid"]
  })"));
  // The order is the caller's, not the sorted key order.
  EXPECT_EQ(s["required"], Parse(R"(["zeta","mid"])"));
}

TEST(BuildersTest, ObjectWithNoRequiredPropertiesHasEmptyRequired) {
  EXPECT_EQ(Object({{"a", Optional(String())}}),
            Parse(R"({"type":"object","properties":{"a":{"type":"string"}},"required":[]})"));
  EXPECT_EQ(Object({}), Parse(R"({"type":"object","properties":{},"required":[]})"));
}

TEST(BuildersTest, OptionalAddsMarkerOutsideObject) {
  EXPECT_EQ(Optional(String()), Parse(R"({"type":"string","x-smithers-optional":true})"));
  EXPECT_TRUE(CheckSchema(Optional(String())).ok());
  EXPECT_THAT(Validate(Optional(String()), "x"), NoViolations());
  EXPECT_THAT(Validate(Optional(String()), 1), ElementsAre(ViolationIs("$", "expected string")));
}

TEST(BuildersTest, OptionalOfBooleanSchema) {
  EXPECT_EQ(Optional(Json(true)), Parse(R"({"x-smithers-optional":true})"));
  Json s = Object({{"any", Optional(Json(true))}, {"none", Optional(Json(false))}});
  EXPECT_EQ(s["required"], Json::array());
  EXPECT_TRUE(CheckSchema(s).ok());
  EXPECT_THAT(Validate(s, Parse(R"({"any": [1]})")), NoViolations());
  EXPECT_THAT(Validate(s, Parse(R"({"none": 1})")), ElementsAre(ViolationIs("$.none", "")));
}

TEST(BuildersTest, NullableWrapsInAnyOf) {
  EXPECT_EQ(Nullable(String()), Parse(R"({"anyOf":[{"type":"string"},{"type":"null"}]})"));
}

TEST(BuildersTest, NullableOfOptionalStaysOptional) {
  Json s = Object({{"a", Nullable(Optional(String()))}, {"b", Optional(Nullable(String()))}});
  EXPECT_EQ(s["required"], Json::array());
  EXPECT_EQ(s["properties"]["a"], Nullable(String()));
  EXPECT_EQ(s["properties"]["b"], Nullable(String()));
}

TEST(BuildersTest, Describe) {
  EXPECT_EQ(Describe(String(), "a name"), Parse(R"({"type":"string","description":"a name"})"));
  Json s = Object({{"n", Describe(Optional(Integer()), "count")}});
  EXPECT_EQ(s["properties"]["n"], Parse(R"({"type":"integer","description":"count"})"));
  EXPECT_EQ(s["required"], Json::array());
}

TEST(BuildersTest, EveryBuilderPassesCheckSchema) {
  Json s = Object({
      {"s", String()},
      {"n", Number()},
      {"i", Integer()},
      {"b", Boolean()},
      {"z", Null()},
      {"e", Enum({"x", "y"})},
      {"l", Literal("fixed")},
      {"a", Array(Record(Nullable(Integer())))},
      {"o", Optional(Describe(Object({{"x", String()}}), "nested"))},
  });
  EXPECT_TRUE(CheckSchema(s).ok()) << CheckSchema(s).ToString();
}

// ---------------------------------------------------------------- types

TEST(ValidateTypeTest, EachTypeAcceptsItsOwnAndRejectsOthers) {
  const std::vector<std::pair<const char*, Json>> cases = {
      {"string", "s"},          {"boolean", true},          {"null", nullptr},
      {"array", Json::array()}, {"object", Json::object()}, {"number", 1.5},
  };
  for (const auto& [type, good] : cases) {
    Json s = {{"type", type}};
    EXPECT_THAT(Validate(s, good), NoViolations()) << type;
    for (const auto& [other_type, other] : cases) {
      if (std::string(other_type) == type) continue;
      if (std::string(type) == "number" && other.is_number()) continue;
      auto v = Validate(s, other);
      ASSERT_EQ(v.size(), 1u) << type << " vs " << other_type;
      EXPECT_EQ(v[0].path, "$");
      EXPECT_EQ(v[0].message, std::string("expected ") + type + ", got " + other_type);
    }
  }
}

TEST(ValidateTypeTest, MessageMatchesContract) {
  auto v = Validate(String(), 5);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].message, "expected string, got number");
}

TEST(ValidateTypeTest, IntegerAcceptsIntegralFloats) {
  EXPECT_THAT(Validate(Integer(), 3), NoViolations());
  EXPECT_THAT(Validate(Integer(), -7), NoViolations());
  EXPECT_THAT(Validate(Integer(), Parse("18446744073709551615")), NoViolations());
  EXPECT_THAT(Validate(Integer(), 3.0), NoViolations());
  EXPECT_THAT(Validate(Integer(), Parse("3.0")), NoViolations());
  EXPECT_THAT(Validate(Integer(), 3.5), ElementsAre(ViolationIs("$", "expected integer")));
  EXPECT_THAT(Validate(Integer(), "3"), ElementsAre(ViolationIs("$", "got string")));
}

TEST(ValidateTypeTest, NumberAcceptsIntegersAndFloats) {
  EXPECT_THAT(Validate(Number(), 3), NoViolations());
  EXPECT_THAT(Validate(Number(), Parse("3")), NoViolations());
  EXPECT_THAT(Validate(Number(), -2.25), NoViolations());
  EXPECT_THAT(Validate(Number(), true), ElementsAre(ViolationIs("$", "got boolean")));
}

TEST(ValidateTypeTest, TypeArray) {
  Json s = {{"type", {"string", "null"}}};
  EXPECT_THAT(Validate(s, "x"), NoViolations());
  EXPECT_THAT(Validate(s, nullptr), NoViolations());
  auto v = Validate(s, 1);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].message, "expected string or null, got number");
}

TEST(ValidateTypeTest, BooleanSchemas) {
  EXPECT_THAT(Validate(Json(true), Parse(R"({"a":[1,2]})")), NoViolations());
  EXPECT_THAT(Validate(Json(false), 1), ElementsAre(ViolationIs("$", "no value is allowed")));
  EXPECT_THAT(Validate(Json::object(), "anything"), NoViolations());
}

// ---------------------------------------------------------------- keywords

TEST(ValidateKeywordTest, Enum) {
  Json s = Enum({"a", "b"});
  EXPECT_THAT(Validate(s, "a"), NoViolations());
  auto v = Validate(s, "x");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].path, "$");
  EXPECT_EQ(v[0].message, R"(value "x" is not one of ["a","b"])");
}

TEST(ValidateKeywordTest, EnumOfMixedValuesComparesNumbersByValue) {
  Json s = {{"enum", {1, "one", nullptr, Json::array({1, 2})}}};
  EXPECT_THAT(Validate(s, 1.0), NoViolations());
  EXPECT_THAT(Validate(s, nullptr), NoViolations());
  EXPECT_THAT(Validate(s, Parse("[1,2]")), NoViolations());
  EXPECT_THAT(Validate(s, 2), ElementsAre(ViolationIs("$", "value 2 is not one of")));
  EXPECT_THAT(Validate(s, Parse("[2,1]")), ElementsAre(ViolationIs("$", "is not one of")));
}

TEST(ValidateKeywordTest, EnumWithWrongTypeReportsOnlyTheType) {
  EXPECT_THAT(Validate(Enum({"a"}), 3), ElementsAre(ViolationIs("$", "expected string")));
}

TEST(ValidateKeywordTest, Const) {
  EXPECT_THAT(Validate(Literal("done"), "done"), NoViolations());
  EXPECT_THAT(Validate(Literal(Parse(R"({"a":[1]})")), Parse(R"({"a":[1.0]})")), NoViolations());
  auto v = Validate(Literal("done"), "pending");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].message, R"(expected constant "done", got "pending")");
  EXPECT_THAT(Validate(Literal(nullptr), 0), ElementsAre(ViolationIs("$", "constant null")));
}

TEST(ValidateKeywordTest, MinAndMaxLength) {
  Json s = {{"type", "string"}, {"minLength", 3}, {"maxLength", 5}};
  EXPECT_THAT(Validate(s, "abc"), NoViolations());
  EXPECT_THAT(Validate(s, "abcde"), NoViolations());
  auto v = Validate(s, "ab");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].message, "string shorter than 3");
  EXPECT_THAT(Validate(s, "abcdef"), ElementsAre(ViolationIs("$", "string longer than 5")));
}

TEST(ValidateKeywordTest, LengthCountsCodePointsNotBytes) {
  Json s = {{"maxLength", 3}, {"minLength", 3}};
  EXPECT_THAT(Validate(s, "h\u00e9\u00e9"), NoViolations());  // 5 bytes, 3 code points
  EXPECT_THAT(Validate(s, "\U0001F600ab"), NoViolations());   // 6 bytes, 3 code points
}

TEST(ValidateKeywordTest, LengthAppliesOnlyToStrings) {
  Json s = {{"minLength", 3}};
  EXPECT_THAT(Validate(s, 1), NoViolations());
  EXPECT_THAT(Validate(s, Json::array()), NoViolations());
}

TEST(ValidateKeywordTest, PatternSearchesAnywhere) {
  Json s = {{"type", "string"}, {"pattern", "[0-9]+"}};
  EXPECT_THAT(Validate(s, "abc123def"), NoViolations());
  EXPECT_THAT(Validate(s, "abc"),
              ElementsAre(ViolationIs("$", R"(string does not match pattern "[0-9]+")")));
  Json anchored = {{"pattern", "^[a-z]+$"}};
  EXPECT_THAT(Validate(anchored, "abc"), NoViolations());
  EXPECT_THAT(Validate(anchored, "abc1"), ElementsAre(ViolationIs("$", "does not match")));
  EXPECT_THAT(Validate(anchored, 5), NoViolations());
}

TEST(ValidateKeywordTest, MinimumAndMaximum) {
  Json s = {{"type", "number"}, {"minimum", 2}, {"maximum", 4.5}};
  EXPECT_THAT(Validate(s, 2), NoViolations());
  EXPECT_THAT(Validate(s, 4.5), NoViolations());
  auto low = Validate(s, 1);
  ASSERT_EQ(low.size(), 1u);
  EXPECT_EQ(low[0].message, "value 1 is less than minimum 2");
  auto high = Validate(s, 5);
  ASSERT_EQ(high.size(), 1u);
  EXPECT_EQ(high[0].message, "value 5 is greater than maximum 4.5");
}

TEST(ValidateKeywordTest, ExclusiveBounds) {
  Json s = {{"exclusiveMinimum", 0}, {"exclusiveMaximum", 10}};
  EXPECT_THAT(Validate(s, 0.001), NoViolations());
  EXPECT_THAT(Validate(s, 9), NoViolations());
  EXPECT_THAT(Validate(s, 0),
              ElementsAre(ViolationIs("$", "not greater than exclusive minimum 0")));
  EXPECT_THAT(Validate(s, 10.0),
              ElementsAre(ViolationIs("$", "not less than exclusive maximum 10")));
  EXPECT_THAT(Validate(s, "10"), NoViolations());  // numeric keywords ignore non-numbers
}

TEST(ValidateKeywordTest, NumericBoundsAreExactForLargeIntegers) {
  Json s = {{"maximum", Parse("9007199254740993")}};
  EXPECT_THAT(Validate(s, Parse("9007199254740993")), NoViolations());
  EXPECT_THAT(Validate(s, Parse("9007199254740994")), ElementsAre(ViolationIs("$", "maximum")));
  Json u = {{"minimum", -1}};
  EXPECT_THAT(Validate(u, Parse("18446744073709551615")), NoViolations());
}

TEST(ValidateKeywordTest, MinAndMaxItems) {
  Json s = {{"type", "array"}, {"minItems", 1}, {"maxItems", 2}};
  EXPECT_THAT(Validate(s, Parse("[1]")), NoViolations());
  EXPECT_THAT(Validate(s, Parse("[1,2]")), NoViolations());
  EXPECT_THAT(Validate(s, Parse("[]")), ElementsAre(ViolationIs("$", "at least 1 item required")));
  EXPECT_THAT(Validate(s, Parse("[1,2,3]")),
              ElementsAre(ViolationIs("$", "at most 2 items allowed")));
}

TEST(ValidateKeywordTest, ItemsReportsEveryBadElement) {
  auto v = Validate(Array(Integer()), Parse(R"([1, "two", 3, null])"));
  EXPECT_THAT(v, ElementsAre(ViolationIs("$[1]", "expected integer, got string"),
                             ViolationIs("$[3]", "expected integer, got null")));
}

TEST(ValidateKeywordTest, RequiredAndProperties) {
  Json s = Object({{"message", String()}, {"n", Optional(Integer())}});
  EXPECT_THAT(Validate(s, Parse(R"({"message":"hi"})")), NoViolations());
  EXPECT_THAT(Validate(s, Parse(R"({"message":"hi","n":2})")), NoViolations());
  auto v = Validate(s, Parse(R"({"n":1.5})"));
  EXPECT_THAT(v, ElementsAre(ViolationIs("$.message", R"(required property "message" is missing)"),
                             ViolationIs("$.n", "expected integer, got number")));
  EXPECT_THAT(Validate(s, Parse("[]")),
              ElementsAre(ViolationIs("$", "expected object, got array")));
}

TEST(ValidateKeywordTest, UnknownPropertiesAreAllowedByObject) {
  EXPECT_THAT(Validate(Object({{"a", String()}}), Parse(R"({"a":"x","extra":[1]})")),
              NoViolations());
}

TEST(ValidateKeywordTest, AdditionalPropertiesFalse) {
  Json s = {{"type", "object"},
            {"properties", {{"a", {{"type", "string"}}}}},
            {"additionalProperties", false}};
  EXPECT_THAT(Validate(s, Parse(R"({"a":"x"})")), NoViolations());
  EXPECT_THAT(Validate(s, Parse(R"({"a":"x","b":1,"c":2})")),
              ElementsAre(ViolationIs("$.b", R"(property "b" is not allowed)"),
                          ViolationIs("$.c", R"(property "c" is not allowed)")));
}

TEST(ValidateKeywordTest, AdditionalPropertiesSchemaSkipsDeclaredProperties) {
  Json s = {{"properties", {{"name", {{"type", "string"}}}}},
            {"additionalProperties", {{"type", "integer"}}}};
  EXPECT_THAT(Validate(s, Parse(R"({"name":"x","count":3})")), NoViolations());
  EXPECT_THAT(Validate(s, Parse(R"({"name":"x","count":"3"})")),
              ElementsAre(ViolationIs("$.count", "expected integer")));
}

TEST(ValidateKeywordTest, Record) {
  Json s = Record(Number());
  EXPECT_THAT(Validate(s, Parse(R"({})")), NoViolations());
  EXPECT_THAT(Validate(s, Parse(R"({"a":1,"b":2.5})")), NoViolations());
  EXPECT_THAT(Validate(s, Parse(R"({"a":"1","b":2,"c":false})")),
              ElementsAre(ViolationIs("$.a", "expected number, got string"),
                          ViolationIs("$.c", "expected number, got boolean")));
  EXPECT_THAT(Validate(s, Parse("[]")), ElementsAre(ViolationIs("$", "expected object")));
}

TEST(ValidateKeywordTest, Nullable) {
  Json s = Nullable(String());
  EXPECT_THAT(Validate(s, "x"), NoViolations());
  EXPECT_THAT(Validate(s, nullptr), NoViolations());
  auto v = Validate(s, 3);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].path, "$");
  EXPECT_THAT(v[0].message, HasSubstr("no anyOf branch"));
  EXPECT_THAT(v[0].message, HasSubstr("[0] expected string, got number"));
  EXPECT_THAT(v[0].message, HasSubstr("[1] expected null, got number"));
}

TEST(ValidateKeywordTest, AnyOfReportsOneViolationWithNestedBranchPaths) {
  Json s = {{"anyOf",
             {Object({{"kind", Literal("a")}, {"x", Integer()}}),
              Object({{"kind", Literal("b")}, {"y", String()}})}}};
  EXPECT_THAT(Validate(s, Parse(R"({"kind":"a","x":1})")), NoViolations());
  EXPECT_THAT(Validate(s, Parse(R"({"kind":"b","y":"s"})")), NoViolations());
  auto v = Validate(s, Parse(R"({"kind":"a","x":"no"})"));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].path, "$");
  EXPECT_THAT(v[0].message, HasSubstr("[0] $.x: expected integer, got string"));
  EXPECT_THAT(v[0].message, HasSubstr("[1] $.kind: expected constant \"b\""));
}

TEST(ValidateKeywordTest, AnyOfInsideObjectUsesPropertyPath) {
  Json s = Object({{"v", Nullable(Integer())}});
  auto v = Validate(s, Parse(R"({"v":"x"})"));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].path, "$.v");
  // Branch messages at the anyOf's own path do not repeat it.
  EXPECT_THAT(v[0].message, HasSubstr("[0] expected integer"));
}

TEST(ValidateKeywordTest, AnnotationsDoNotConstrain) {
  Json s = {{"type", "string"}, {"title", "T"}, {"description", "D"}, {"default", 5}};
  EXPECT_THAT(Validate(s, "x"), NoViolations());
}

// ---------------------------------------------------------------- paths

TEST(ValidatePathTest, AllViolationsReportedAcrossNestedObjectsAndArrays) {
  Json s = Object({
      {"title", String()},
      {"items", Array(Object({{"name", String()}, {"qty", Integer()}}))},
      {"meta", Object({{"owner", Object({{"id", Integer()}})}})},
  });
  Json value = Parse(R"({
    "items": [
      {"name": "ok", "qty": 1},
      {"name": 7, "qty": 2},
      {"qty": 1.5}
    ],
    "meta": {"owner": {"id": "abc"}}
  })");
  auto v = Validate(s, value);
  // Reported in key order at each level, required-missing included.
  EXPECT_THAT(v, ElementsAre(ViolationIs("$.items[1].name", "expected string, got number"),
                             ViolationIs("$.items[2].name", "required property \"name\""),
                             ViolationIs("$.items[2].qty", "expected integer, got number"),
                             ViolationIs("$.meta.owner.id", "expected integer, got string"),
                             ViolationIs("$.title", "required property \"title\" is missing")));
}

TEST(ValidatePathTest, NonIdentifierKeysAreQuoted) {
  Json s = Object({{"weird key", Integer()},
                   {"9lives", Integer()},
                   {"q\"uote", Integer()},
                   {"_ok1", Integer()}});
  Json value = Parse(R"({"weird key":"a","9lives":"b","q\"uote":"c","_ok1":"d"})");
  auto v = Validate(s, value);
  // Properties are reported in key order.
  EXPECT_THAT(Paths(v),
              ElementsAre(R"($["9lives"])", "$._ok1", R"($["q\"uote"])", R"($["weird key"])"));
}

TEST(ValidatePathTest, NestedArrays) {
  auto v = Validate(Array(Array(String())), Parse(R"([["a"],["b", 2], [], [true]])"));
  EXPECT_THAT(Paths(v), ElementsAre("$[1][1]", "$[3][0]"));
}

TEST(ValidatePathTest, RecordValuesUseTheirKeys) {
  auto v = Validate(Record(Object({{"n", Integer()}})), Parse(R"({"a b":{"n":1},"c":{}})"));
  EXPECT_THAT(Paths(v), ElementsAre("$.c.n"));
}

TEST(FormatViolationsTest, JoinsPathAndMessage) {
  EXPECT_EQ(FormatViolations({}), "");
  EXPECT_EQ(FormatViolations({{"$.a", "expected string, got number"},
                              {"$.b", "required property \"b\" is missing"}}),
            "$.a: expected string, got number; $.b: required property \"b\" is missing");
  Json s = Object({{"a", String()}, {"b", String()}});
  EXPECT_EQ(FormatViolations(Validate(s, Parse(R"({"a":1})"))),
            "$.a: expected string, got number; $.b: required property \"b\" is missing");
}

// ---------------------------------------------------------------- CheckSchema

void ExpectRejected(const Json& schema, const std::string& path) {
  Status s = CheckSchema(schema);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << schema.dump();
  EXPECT_THAT(s.message(), HasSubstr(path + ":")) << schema.dump();
}

TEST(CheckSchemaTest, AcceptsEverySupportedKeyword) {
  Json s = Parse(R"({
    "title": "T", "description": "D", "default": {"a": 1},
    "type": ["object", "null"],
    "properties": {
      "s": {"type": "string", "minLength": 1, "maxLength": 3.0, "pattern": "^a"},
      "n": {"type": "number", "minimum": 0, "maximum": 1.5,
            "exclusiveMinimum": -1, "exclusiveMaximum": 2},
      "a": {"type": "array", "items": {"enum": [1, "x", null]}, "minItems": 0, "maxItems": 9},
      "c": {"const": [1, 2]},
      "u": {"anyOf": [{"type": "integer"}, true]},
      "r": {"type": "object", "additionalProperties": false},
      "o": {"type": "string", "x-smithers-optional": true}
    },
    "required": ["s"],
    "additionalProperties": {"type": "boolean"}
  })");
  Status st = CheckSchema(s);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(CheckSchema(Json(true)).ok());
  EXPECT_TRUE(CheckSchema(Json(false)).ok());
  EXPECT_TRUE(CheckSchema(Json::object()).ok());
}

TEST(CheckSchemaTest, RejectsUnknownKeywordWithPath) {
  Status s = CheckSchema(Object({{"a", {{"type", "string"}, {"format", "email"}}}}));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("$.properties.a.format"));
  EXPECT_THAT(s.message(), HasSubstr("unsupported keyword \"format\""));

  ExpectRejected(Parse(R"({"minLenght": 3})"), "$.minLenght");
  ExpectRejected(Parse(R"({"$schema": "x"})"), R"($["$schema"])");
  ExpectRejected(Parse(R"({"items": {"items": {"oneOf": []}}})"), "$.items.items.oneOf");
  ExpectRejected(Parse(R"({"anyOf": [true, {"not": {}}]})"), "$.anyOf[1].not");
  ExpectRejected(Parse(R"({"additionalProperties": {"allOf": []}})"),
                 "$.additionalProperties.allOf");
  ExpectRejected(Parse(R"({"properties": {"a b": {"format": "x"}}})"),
                 R"($.properties["a b"].format)");
}

TEST(CheckSchemaTest, RejectsMalformedValues) {
  ExpectRejected(Parse(R"({"type": "strin"})"), "$.type");
  ExpectRejected(Parse(R"({"type": 3})"), "$.type");
  ExpectRejected(Parse(R"({"type": []})"), "$.type");
  ExpectRejected(Parse(R"({"type": ["string", "nope"]})"), "$.type[1]");
  ExpectRejected(Parse(R"({"type": ["string", "string"]})"), "$.type[1]");
  ExpectRejected(Parse(R"({"required": "a"})"), "$.required");
  ExpectRejected(Parse(R"({"required": ["a", 1]})"), "$.required[1]");
  ExpectRejected(Parse(R"({"required": ["a", "a"]})"), "$.required[1]");
  ExpectRejected(Parse(R"({"properties": []})"), "$.properties");
  ExpectRejected(Parse(R"({"properties": {"a": 1}})"), "$.properties.a");
  ExpectRejected(Parse(R"({"items": [{"type": "string"}]})"), "$.items");
  ExpectRejected(Parse(R"({"additionalProperties": "no"})"), "$.additionalProperties");
  ExpectRejected(Parse(R"({"enum": "a"})"), "$.enum");
  ExpectRejected(Parse(R"({"anyOf": []})"), "$.anyOf");
  ExpectRejected(Parse(R"({"anyOf": {}})"), "$.anyOf");
  ExpectRejected(Parse(R"({"minLength": -1})"), "$.minLength");
  ExpectRejected(Parse(R"({"maxItems": 1.5})"), "$.maxItems");
  ExpectRejected(Parse(R"({"minItems": "1"})"), "$.minItems");
  ExpectRejected(Parse(R"({"minimum": "0"})"), "$.minimum");
  ExpectRejected(Parse(R"({"exclusiveMinimum": true})"), "$.exclusiveMinimum");
  ExpectRejected(Parse(R"({"pattern": "(unclosed"})"), "$.pattern");
  ExpectRejected(Parse(R"({"pattern": 1})"), "$.pattern");
  ExpectRejected(Parse(R"({"description": 1})"), "$.description");
  ExpectRejected(Parse(R"({"title": null})"), "$.title");
  ExpectRejected(Parse(R"({"x-smithers-optional": "yes"})"), R"($["x-smithers-optional"])");
  ExpectRejected(Json("string"), "$");
  ExpectRejected(Json(nullptr), "$");
  ExpectRejected(Json::array(), "$");
}

TEST(CheckSchemaTest, RejectsAbsurdNesting) {
  Json s = String();
  for (int i = 0; i < 200; ++i) s = Array(s);
  EXPECT_EQ(CheckSchema(s).code(), StatusCode::kInvalidArgument);
  // Validating with it anyway stops at the depth limit instead of recursing on.
  EXPECT_THAT(Validate(s, Json::array()), NoViolations());
  Json deep = "leaf";
  for (int i = 0; i < 200; ++i) deep = Json::array({deep});
  auto v = Validate(s, deep);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_THAT(v[0].message, HasSubstr("nested too deeply"));
  EXPECT_EQ(v[0].path.rfind("$[0][0]", 0), 0u);
}

TEST(ValidateRobustnessTest, MalformedSchemasDoNotThrow) {
  // Validate's contract requires a checked schema, but a bad one must not
  // crash the caller.
  EXPECT_NO_THROW(Validate(Parse(R"({"type": 5, "minLength": "x", "pattern": "("})"), "s"));
  EXPECT_NO_THROW(Validate(Parse(R"({"properties": [], "required": 3})"), Json::object()));
  EXPECT_NO_THROW(Validate(Json("nonsense"), 1));
  auto v = Validate(Parse(R"({"pattern": "("})"), "s");
  EXPECT_THAT(v, ElementsAre(ViolationIs("$", "not a valid regular expression")));
}

// ---------------------------------------------------------------- canonical form

TEST(CanonicalJsonTest, SortedCompact) {
  Json v = Parse(R"({ "b" : [ 1, {"z":1, "a":2} ], "a" : null, "c": "x\"y" })");
  EXPECT_EQ(CanonicalJson(v), R"({"a":null,"b":[1,{"a":2,"z":1}],"c":"x\"y"})");
}

TEST(CanonicalJsonTest, NumbersPrintConsistently) {
  EXPECT_EQ(CanonicalJson(Json(3)), "3");
  EXPECT_EQ(CanonicalJson(Json(3u)), "3");
  EXPECT_EQ(CanonicalJson(Json(3.0)), "3");
  EXPECT_EQ(CanonicalJson(Json(-0.0)), "0");
  EXPECT_EQ(CanonicalJson(Json(-2.0)), "-2");
  EXPECT_EQ(CanonicalJson(Json(2.5)), "2.5");
  EXPECT_EQ(CanonicalJson(Json(0.1)), "0.1");
  EXPECT_EQ(CanonicalJson(Parse("1e300")), "1e+300");
  EXPECT_EQ(CanonicalJson(Parse("18446744073709551615")), "18446744073709551615");
  EXPECT_EQ(CanonicalJson(Parse("-9223372036854775808")), "-9223372036854775808");
}

TEST(CanonicalJsonTest, InvalidUtf8DoesNotThrow) {
  Json v = std::string(
      "a\xff"
      "b");
  std::string out;
  EXPECT_NO_THROW(out = CanonicalJson(v));
  EXPECT_FALSE(out.empty());
}

TEST(HashTest, StableAcrossKeyInsertionOrder) {
  Json a = Json::object();
  a["type"] = "object";
  a["properties"] = {{"x", {{"type", "string"}}}, {"y", {{"minimum", 1}, {"type", "number"}}}};
  a["required"] = {"x"};
  Json b = Json::object();
  b["required"] = {"x"};
  b["properties"] = Json::object();
  b["properties"]["y"] = {{"type", "number"}, {"minimum", 1.0}};
  b["properties"]["x"] = {{"type", "string"}};
  b["type"] = "object";
  EXPECT_EQ(Hash(a), Hash(b));
  EXPECT_EQ(Hash(a), Hash(Json::parse(a.dump(2))));
  EXPECT_EQ(Hash(a).size(), 64u);
  EXPECT_EQ(Hash(a).find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(HashTest, BuilderOutputIsStable) {
  // Golden value: schema hashes are persisted (a run's config.outputSchemas,
  // the cache's schema_sig, every cache key), so a builder change that alters
  // this hash is a persisted-format change: it needs a migration, not a new
  // literal here.
  Json s = Object({{"message", String()},
                   {"n", Optional(Integer())},
                   {"tags", Array(String())},
                   {"meta", Object({{"ok", Boolean()}, {"score", Optional(Number())}})}});
  EXPECT_EQ(Hash(s), "29b3ab75dfcc1f675f7e97f035893d2f8a1d71fa1e1a22bd8d6921493bd90b28");
}

TEST(HashTest, DifferentSchemasHashDifferently) {
  Json base = Object({{"a", String()}});
  EXPECT_NE(Hash(base), Hash(Object({{"a", Integer()}})));
  EXPECT_NE(Hash(base), Hash(Object({{"a", Optional(String())}})));
  EXPECT_NE(Hash(base), Hash(Object({{"b", String()}})));
  // "required" order is meaningful to the author, so it is part of the identity.
  EXPECT_NE(Hash(Object({{"a", String()}, {"b", String()}})),
            Hash(Object({{"b", String()}, {"a", String()}})));
}

TEST(HashTest, MatchesSha256OfCanonicalJson) {
  // sha256("{}") computed independently.
  EXPECT_EQ(Hash(Json::object()),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
}

}  // namespace
}  // namespace smithers::schema
