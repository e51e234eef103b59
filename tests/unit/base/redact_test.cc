// Redaction: known secret values and key shapes never survive Redact().
#include "base/redact.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

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
             {"accessToken", "opaque"},
             {"n", 3}};
  Json out = RedactJson(in);
  EXPECT_EQ(out["headers"]["Authorization"], "[REDACTED]");
  EXPECT_EQ(out["headers"]["Accept"], "json");
  EXPECT_EQ(out["messages"][0], "use [REDACTED] please");
  EXPECT_EQ(out["apiKey"], 12345678);  // numbers are never secrets
  EXPECT_EQ(out["accessToken"], "[REDACTED]");
  EXPECT_EQ(out["n"], 3);
}

// Golden inputs and outputs: key shapes after '=', quotes, "export", short keys.
TEST(Redact, ShapesAtWordBoundaries) {
  const std::pair<const char*, const char*> kGolden[] = {
      {"key=sk-abcdef123456", "key=[REDACTED]"},
      {"export K=sk-abcdef123456", "export K=[REDACTED]"},
      {"export OPENAI_API_KEY=sk-proj-abcdefghijklmnop1234", "export OPENAI_API_KEY=[REDACTED]"},
      {"{\"k\":\"sk-abcdef123456\"}", "{\"k\":\"[REDACTED]\"}"},
      {"'sk-abcdef12'", "'[REDACTED]'"},
      {"(sk-abcdefgh)", "([REDACTED])"},
      {"the key sk-abcdef123456.", "the key [REDACTED]."},
      {"url/sk-abcdef123456?x", "url/[REDACTED]?x"},
      {"sk-abc", "sk-abc"},                              // too short to be a key
      {"sk-abcdefg", "sk-abcdefg"},                      // 7 after "sk-"
      {"task-sk-abcdef123456", "task-sk-abcdef123456"},  // inside a word
      {"disk-abcdef123456", "disk-abcdef123456"},
      {"GITHUB=ghp_0123456789abcdefghijABCD", "GITHUB=[REDACTED]"},
      {"token=abcdef12345", "token=[REDACTED]"},
      {"tokens: 123456789", "tokens: 123456789"},  // not a "token" pair
      {"token: 123456789", "token: 123456789"},    // digits alone are no secret
      {"inputTokens=1234567", "inputTokens=1234567"},
  };
  for (const auto& [in, want] : kGolden) EXPECT_EQ(Redact(in), want) << in;
}

TEST(RedactJson, NumbersAndCountsAreNeverRedacted) {
  Json in = {{"tokens", {{"input", 1200}, {"output", 34}}},
             {"inputTokens", 1200},
             {"outputTokens", 34},
             {"totalTokens", 1234},
             {"maxTokens", 4096},
             {"max_tokens", 4096},
             {"token", 99},
             {"password", true},
             {"secret", nullptr},
             {"label", "inputTokens"}};
  std::vector<std::string> paths;
  EXPECT_EQ(RedactJson(in, &paths), in);
  EXPECT_TRUE(paths.empty());
}

TEST(RedactJson, NamesThePathsItChanged) {
  Json in = {
      {"stdout", "key=sk-abcdef123456\n"}, {"items", {"ok", {{"clientSecret", "abc"}}}}, {"n", 1}};
  std::vector<std::string> paths;
  Json out = RedactJson(in, &paths);
  EXPECT_EQ(out["stdout"], "key=[REDACTED]\n");
  EXPECT_EQ(out["items"][1]["clientSecret"], "[REDACTED]");
  EXPECT_EQ(paths, (std::vector<std::string>{"items[1].clientSecret", "stdout"}));
  paths.clear();
  EXPECT_EQ(RedactJson(Json("sk-abcdef123456"), &paths), "[REDACTED]");
  EXPECT_EQ(paths, std::vector<std::string>{"$"});
}

TEST(SecretKeyName, WordsNotSubstrings) {
  for (const char* k :
       {"token", "accessToken", "access_token", "Authorization", "x-api-key", "apiKey", "API_KEY",
        "apikey", "client_secret", "DB_PASSWORD", "set-cookie", "credentials", "privateKey"}) {
    EXPECT_TRUE(SecretKeyName(k)) << k;
  }
  for (const char* k : {"tokens", "inputTokens", "outputTokens", "totalTokens", "maxTokens",
                        "max_tokens", "keyboard", "monkey", "secretary_name_x", "n"}) {
    EXPECT_FALSE(SecretKeyName(k)) << k;
  }
}

TEST(FindSecretShaped, NamesTheField) {
  EXPECT_EQ(FindSecretShaped(Json{{"a", 1}, {"b", {"x", "use sk-abcdef123456"}}}), "b[1]");
  EXPECT_EQ(FindSecretShaped(Json{{"token", "abc"}, {"n", 123456789}}), std::nullopt);
  Secrets().Add("not-key-shaped-known-value");
  EXPECT_EQ(FindSecretShaped(Json{{"x", {{"y", "not-key-shaped-known-value"}}}}), "x.y");
}

// Streamed output (a task's NodeOutput events): a secret split between two
// pieces, at every place, never comes out, whole or in part.
TEST(StreamRedactor, ASecretSplitAnywhereIsStillRedacted) {
  const std::string known = "streamed-secret-value-0123456789";
  Secrets().Add(known);
  const std::string key = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123";
  for (const std::string& secret : {known, key}) {
    const std::string text = "line one\nthe key is " + secret + " and more\nlast";
    for (size_t split = 0; split <= text.size(); ++split) {
      StreamRedactor r;
      std::string out = r.Push(text.substr(0, split));
      out += r.Push(text.substr(split));
      out += r.Finish();
      EXPECT_EQ(out.find(secret.substr(0, 12)), std::string::npos) << split << ": " << out;
      EXPECT_EQ(out.find(secret.substr(secret.size() - 12)), std::string::npos)
          << split << ": " << out;
      EXPECT_EQ(out, "line one\nthe key is [REDACTED] and more\nlast") << split;
    }
  }
}

TEST(StreamRedactor, PassesOnWholeWordsAndHoldsTheRest) {
  Secrets().Add("streamed-secret-value-0123456789");
  StreamRedactor r;
  EXPECT_EQ(r.Push("no break yet"), "no break ");
  EXPECT_EQ(r.Push(" still\nnext"), "yet still\n");
  // An end that begins a known value is held, even past a line break.
  EXPECT_EQ(r.Push("\nstreamed-secret"), "next\n");
  std::string tail(200, 'x');
  EXPECT_EQ(r.Push("-value-0123456789 done\n" + tail), "[REDACTED] done\n");
  EXPECT_EQ(r.Finish(), tail);
  EXPECT_EQ(r.Finish(), "");
  // A key shape is passed on only once its word is whole.
  StreamRedactor k;
  EXPECT_EQ(k.Push("use sk-proj-ABCDEF"), "use ");
  EXPECT_EQ(k.Push("GHIJKLMNOP now"), "[REDACTED] ");
  // A pair's key waits for its value.
  StreamRedactor p;
  EXPECT_EQ(p.Push("the password: "), "the ");
  // (One statement each: the operands of + are evaluated in no set order.)
  std::string rest = p.Push("hunter2hunter2 ok\n");
  rest += p.Finish();
  EXPECT_EQ(rest.find("hunter2"), std::string::npos) << rest;
  StreamRedactor b;
  std::string auth = b.Push("Authorization: Bearer ");
  auth += b.Push("abc.def.ghijklmnop\n");
  auth += b.Finish();
  EXPECT_EQ(auth.find("ghijklmnop"), std::string::npos) << auth;
  // A huge piece without a space still goes.
  StreamRedactor blob;
  EXPECT_FALSE(blob.Push(std::string(70 * 1024, 'y')).empty());
}

}  // namespace
}  // namespace smithers::base
