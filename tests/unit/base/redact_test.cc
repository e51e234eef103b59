// Redaction: known secret values and key shapes never survive Redact().
#include "base/redact.h"

#include <gtest/gtest.h>

namespace smithers::base {
namespace {

TEST(Redact, KnownValuesAnywhere) {
  Secrets().Add("local-secret-value-123");
  Secrets().Add("short");  // too short to redact safely: ignored
  EXPECT_EQ(Redact("key local-secret-value-123 in the middle"), "key [REDACTED] in the middle");
  EXPECT_EQ(Redact("xlocal-secret-value-123local-secret-value-123"), "x[REDACTED][REDACTED]");
  EXPECT_EQ(Redact("short stays"), "short stays");
}

TEST(Redact, KeyShapes) {
  EXPECT_EQ(Redact("auth failed for sk-proj-abcdefghijklmnop1234 today"),
            "auth failed for [REDACTED] today");
  EXPECT_EQ(Redact("sk-ant-api03-AAAAAAAAAAAAAAAAAAAA"), "[REDACTED]");
  EXPECT_EQ(Redact("Authorization: Bearer abc.def.ghijklmnop"), "Authorization: [REDACTED]");
  EXPECT_EQ(Redact("url?api_key=abcdef123456&x=1"), "url?api_key=[REDACTED]&x=1");
  EXPECT_EQ(Redact("{\"password\": \"hunter2hunter2\"}"), "{\"password\": \"[REDACTED]\"}");
  EXPECT_EQ(Redact("ghp_0123456789abcdefghijABCD"), "[REDACTED]");
  // Not keys: ordinary words and short suffixes.
  EXPECT_EQ(Redact("task-sk-1 and risk-assessment"), "task-sk-1 and risk-assessment");
  EXPECT_EQ(Redact("sk-short"), "sk-short");
}

TEST(RedactJson, StringsAndSecretKeys) {
  Json in = {{"headers", {{"Authorization", "anything at all"}, {"Accept", "json"}}},
             {"messages", {"use sk-abcdefghijklmnopqrstu please"}},
             {"apiKey", 12345678},
             {"n", 3}};
  Json out = RedactJson(in);
  EXPECT_EQ(out["headers"]["Authorization"], "[REDACTED]");
  EXPECT_EQ(out["headers"]["Accept"], "json");
  EXPECT_EQ(out["messages"][0], "use [REDACTED] please");
  EXPECT_EQ(out["apiKey"], "[REDACTED]");
  EXPECT_EQ(out["n"], 3);
}

}  // namespace
}  // namespace smithers::base
