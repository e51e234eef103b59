// What the Gateway's handlers share to read their params (gateway/params.cc).
#include <gtest/gtest.h>

#include <string>

#include "gateway/methods.h"
#include "smithers/json.h"

namespace smithers::gateway {
namespace {

TEST(ParamsTest, ReadRequiredReadsEveryNameOrNamesThemAllInOneReply) {
  std::string run_id, node_id;
  std::optional<Reply> bad = ReadRequired(Json{{"runId", "r1"}, {"nodeId", "n"}},
                                          {{"runId", &run_id}, {"nodeId", &node_id}});
  EXPECT_FALSE(bad.has_value());
  EXPECT_EQ(run_id, "r1");
  EXPECT_EQ(node_id, "n");

  // Missing, empty or not a string: the one reply names every parameter asked for.
  for (const Json& params : {Json{{"runId", "r1"}}, Json{{"runId", "r1"}, {"nodeId", ""}},
                             Json{{"runId", "r1"}, {"nodeId", 7}}}) {
    bad = ReadRequired(params, {{"runId", &run_id}, {"nodeId", &node_id}});
    ASSERT_TRUE(bad.has_value()) << params.dump();
    EXPECT_FALSE(bad->ok);
    EXPECT_EQ(bad->code, "InvalidRequest");
    EXPECT_EQ(bad->message, "runId and nodeId are required") << params.dump();
  }
  bad = ReadRequired(Json::object(), {{"cronId", &run_id}});
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->message, "cronId is required");
  EXPECT_EQ(HttpStatusFor(bad->code), 400);
}

TEST(ParamsTest, IntParamRefusesWhatIsNotAnIntegerInRange) {
  EXPECT_EQ(*IntParam(Json::object(), "limit", 50, 1, 100), 50);
  EXPECT_EQ(*IntParam(Json{{"limit", nullptr}}, "limit", 50, 1, 100), 50);
  EXPECT_EQ(*IntParam(Json{{"limit", 100}}, "limit", 50, 1, 100), 100);
  for (const Json& v :
       {Json(0), Json(101), Json(1e300), Json(2.5), Json("7"), Json(int64_t{4294967297})}) {
    EXPECT_FALSE(IntParam(Json{{"limit", v}}, "limit", 50, 1, 100).ok()) << v.dump();
  }
}

}  // namespace
}  // namespace smithers::gateway
