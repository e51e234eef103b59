// CallModel against tests/e2e/fake_model_server.py, a local server speaking
// the OpenAI Chat Completions and Anthropic Messages wire formats.
#include "agents/model.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace smithers::agents {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kKey = "sk-test-1234567890abcdefSECRET";

int64_t MsSince(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

std::string ServerScript() {
  const char* src = std::getenv("SMITHERS_SOURCE_DIR");
  fs::path root = src != nullptr ? fs::path(src) : fs::path(__FILE__).parent_path() / "../../..";
  return (root / "tests/e2e/fake_model_server.py").string();
}

// fake_model_server.py in a child process, scripted by `script` (see the
// server's docstring), with its request log in a temp dir.
class FakeServer {
 public:
  explicit FakeServer(const Json& script) {
    char tmpl[] = "/tmp/smithers_model_test_XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::ofstream(dir_ / "script.json") << script.dump();
    int fds[2];
    if (pipe(fds) != 0) return;
    std::string server = ServerScript();
    std::string script_path = (dir_ / "script.json").string();
    std::string log_path = (dir_ / "requests.jsonl").string();
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      execlp("python3", "python3", server.c_str(), "--script", script_path.c_str(), "--log",
             log_path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    FILE* out = fdopen(fds[0], "r");
    char line[64] = {0};
    if (out != nullptr && fgets(line, sizeof(line), out) != nullptr) {
      std::sscanf(line, "PORT %d", &port_);  // NOLINT(cert-err34-c)
    }
    if (out != nullptr) fclose(out);
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;
  ~FakeServer() { Stop(); }

  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (!dir_.empty()) fs::remove_all(dir_);
    dir_.clear();
  }

  int port() const { return port_; }
  std::string Url(const std::string& path = "") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  // Every request the server got, in order.
  std::vector<Json> Requests() const {
    std::vector<Json> out;
    std::ifstream in(dir_ / "requests.jsonl");
    for (std::string line; std::getline(in, line);) out.push_back(Json::parse(line));
    return out;
  }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

Json Sse(const std::vector<Json>& data) {
  Json events = Json::array();
  for (const Json& d : data) events.push_back({{"data", d}});
  return events;
}

ModelRequest OpenAi(const FakeServer& server) {
  ModelRequest req{.provider = "openai",
                   .base_url = server.Url("/v1"),
                   .model = "gpt-test",
                   .api_key = kKey,
                   .system = "You are terse."};
  req.messages.push_back({.role = "user", .content = "Say hi"});
  req.retry_base_ms = 10;
  return req;
}

ModelRequest Anthropic(const FakeServer& server) {
  ModelRequest req = OpenAi(server);
  req.provider = "anthropic";
  req.base_url = server.Url();
  req.model = "claude-test";
  return req;
}

Json OpenAiBody(const std::string& content, int in = 12, int out = 3) {
  return {{"id", "chatcmpl-1"},
          {"object", "chat.completion"},
          {"choices",
           {{{"index", 0},
             {"message", {{"role", "assistant"}, {"content", content}}},
             {"finish_reason", "stop"}}}},
          {"usage", {{"prompt_tokens", in}, {"completion_tokens", out}}}};
}

const Json kOk = {{"status", 200}, {"body", OpenAiBody("Hello")}};
constexpr const char* kChat = "/v1/chat/completions";

// The key appears in exactly one place of a recorded request: its auth header.
void ExpectKeyOnlyIn(Json request, const std::string& header, const std::string& value) {
  ASSERT_TRUE(request["headers"].contains(header)) << request.dump();
  EXPECT_EQ(request["headers"][header], value);
  request["headers"].erase(header);
  EXPECT_EQ(request.dump().find(kKey), std::string::npos) << request.dump();
}

TEST(ModelTest, OpenAiTextReplyAndRequestShape) {
  FakeServer server(Json{{kChat, {kOk}}});
  ModelRequest req = OpenAi(server);
  req.temperature = 0.2;
  req.max_tokens = 50;
  req.headers["X-Extra"] = "yes";
  Result<ModelReply> reply = CallModel(req, {});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->text, "Hello");
  EXPECT_EQ(reply->input_tokens, 12);
  EXPECT_EQ(reply->output_tokens, 3);
  EXPECT_EQ(reply->stop_reason, "stop");
  EXPECT_EQ(reply->http_attempts, 1);
  EXPECT_TRUE(reply->tool_calls.empty());
  EXPECT_TRUE(reply->structured.is_null());

  std::vector<Json> got = server.Requests();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["path"], kChat);
  const Json& body = got[0]["body"];
  EXPECT_EQ(body["model"], "gpt-test");
  EXPECT_EQ(body["messages"], Json::parse(R"([{"role":"system","content":"You are terse."},
                                              {"role":"user","content":"Say hi"}])"));
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.2);
  EXPECT_EQ(body["max_tokens"], 50);
  EXPECT_FALSE(body.contains("stream"));
  EXPECT_FALSE(body.contains("tools"));
  EXPECT_FALSE(body.contains("response_format"));
  EXPECT_EQ(got[0]["headers"]["X-Extra"], "yes");
  EXPECT_EQ(got[0]["headers"]["Content-Type"], "application/json");
  ExpectKeyOnlyIn(got[0], "Authorization", std::string("Bearer ") + kKey);
}

TEST(ModelTest, OpenAiStructuredOutput) {
  FakeServer server(Json{{kChat, {{{"body", OpenAiBody(R"({"verdict":"ok","score":3})")}}}}});
  ModelRequest req = OpenAi(server);
  req.output_schema =
      Json::parse(R"({"type":"object","properties":{"verdict":{"type":"string"}}})");
  req.output_name = "review";
  Result<ModelReply> reply = CallModel(req, {});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->structured, Json::parse(R"({"verdict":"ok","score":3})"));
  Json body = server.Requests().at(0)["body"];
  EXPECT_EQ(body["response_format"],
            Json({{"type", "json_schema"},
                  {"json_schema",
                   {{"name", "review"}, {"schema", req.output_schema}, {"strict", false}}}}));
}

TEST(ModelTest, OpenAiToolCallsAndToolHistory) {
  Json message = {{"role", "assistant"},
                  {"content", nullptr},
                  {"tool_calls",
                   {{{"id", "call_1"},
                     {"type", "function"},
                     {"function", {{"name", "read"}, {"arguments", R"({"path":"a.txt"})"}}}},
                    {{"id", "call_2"},
                     {"type", "function"},
                     {"function", {{"name", "grep"}, {"arguments", ""}}}}}}};
  Json body = {{"choices", {{{"index", 0}, {"message", message}, {"finish_reason", "tool_calls"}}}},
               {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 7}}}};
  FakeServer server(Json{{kChat, {{{"body", body}}}}});
  ModelRequest req = OpenAi(server);
  req.tools.push_back({.name = "read",
                       .description = "Reads a file",
                       .parameters = Json::parse(R"({"type":"object"})")});
  req.messages.push_back(
      {.role = "assistant",
       .tool_calls = {{.id = "call_0", .name = "read", .arguments = {{"path", "b"}}}}});
  req.messages.push_back({.role = "tool", .content = "contents", .tool_call_id = "call_0"});
  Result<ModelReply> reply = CallModel(req, {});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  ASSERT_EQ(reply->tool_calls.size(), 2u);
  EXPECT_EQ(reply->tool_calls[0].id, "call_1");
  EXPECT_EQ(reply->tool_calls[0].name, "read");
  EXPECT_EQ(reply->tool_calls[0].arguments, Json({{"path", "a.txt"}}));
  EXPECT_EQ(reply->tool_calls[1].arguments, Json::object());
  EXPECT_EQ(reply->stop_reason, "tool_calls");
  EXPECT_EQ(reply->text, "");

  Json sent = server.Requests().at(0)["body"];
  EXPECT_EQ(sent["tools"], Json::parse(R"([{"type":"function","function":{"name":"read",
            "description":"Reads a file","parameters":{"type":"object"}}}])"));
  EXPECT_EQ(sent["messages"][2], Json::parse(R"({"role":"assistant","content":null,
            "tool_calls":[{"id":"call_0","type":"function",
            "function":{"name":"read","arguments":"{\"path\":\"b\"}"}}]})"));
  EXPECT_EQ(sent["messages"][3],
            Json::parse(R"({"role":"tool","tool_call_id":"call_0","content":"contents"})"));
}

// Text deltas with the time each arrived, to check they come incrementally.
struct Deltas {
  std::vector<std::string> pieces;
  std::vector<Clock::time_point> at;
  CallHooks Hooks() {
    return {.on_text_delta = [this](std::string_view s) {
      pieces.emplace_back(s);
      at.push_back(Clock::now());
    }};
  }
};

TEST(ModelTest, OpenAiStreamAssemblesTextAndToolCalls) {
  auto chunk = [](const Json& delta, const Json& finish = nullptr) {
    return Json{{"id", "c"},
                {"object", "chat.completion.chunk"},
                {"choices", {{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}}}};
  };
  Json events = Sse({
      chunk({{"role", "assistant"}, {"content", ""}}),
      chunk({{"content", "Hel"}}),
      chunk({{"content", "lo, "}}),
      chunk({{"content", "world"}}),
      chunk(Json::parse(R"({"tool_calls":[{"index":0,"id":"call_9","type":"function",
                            "function":{"name":"read","arguments":""}}]})")),
      chunk(Json::parse(R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"pa"}}]})")),
      chunk(Json::parse(R"({"tool_calls":[{"index":0,"function":{"arguments":"th\":\"x\"}"}}]})")),
      chunk(Json::object(), "tool_calls"),
      {{"id", "c"},
       {"choices", Json::array()},
       {"usage", {{"prompt_tokens", 21}, {"completion_tokens", 8}}}},
      "[DONE]",
  });
  FakeServer server(Json{{kChat, {{{"sse_events", events}, {"chunk_delay_s", 0.05}}}}});
  ModelRequest req = OpenAi(server);
  req.stream = true;
  Deltas deltas;
  Result<ModelReply> reply = CallModel(req, deltas.Hooks());
  Clock::time_point done = Clock::now();
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->text, "Hello, world");
  EXPECT_EQ(deltas.pieces, (std::vector<std::string>{"Hel", "lo, ", "world"}));
  // The first piece was handed over while the rest was still on its way.
  EXPECT_GE(std::chrono::duration_cast<std::chrono::milliseconds>(done - deltas.at[0]).count(),
            200);
  ASSERT_EQ(reply->tool_calls.size(), 1u);
  EXPECT_EQ(reply->tool_calls[0].id, "call_9");
  EXPECT_EQ(reply->tool_calls[0].name, "read");
  EXPECT_EQ(reply->tool_calls[0].arguments, Json({{"path", "x"}}));
  EXPECT_EQ(reply->input_tokens, 21);
  EXPECT_EQ(reply->output_tokens, 8);
  EXPECT_EQ(reply->stop_reason, "tool_calls");
  Json sent = server.Requests().at(0)["body"];
  EXPECT_EQ(sent["stream"], true);
  EXPECT_EQ(sent["stream_options"], Json({{"include_usage", true}}));
}

TEST(ModelTest, AnthropicStreamAssemblesTextAndToolUse) {
  Json raw = Json::parse(R"([
    ["message_start", {"type":"message_start","message":{"id":"msg_1","type":"message",
      "role":"assistant","content":[],"model":"claude-test","stop_reason":null,
      "usage":{"input_tokens":30,"output_tokens":1}}}],
    ["content_block_start", {"type":"content_block_start","index":0,
      "content_block":{"type":"text","text":""}}],
    ["ping", {"type":"ping"}],
    ["content_block_delta", {"type":"content_block_delta","index":0,
      "delta":{"type":"text_delta","text":"Let me "}}],
    ["content_block_delta", {"type":"content_block_delta","index":0,
      "delta":{"type":"text_delta","text":"look."}}],
    ["content_block_stop", {"type":"content_block_stop","index":0}],
    ["content_block_start", {"type":"content_block_start","index":1,
      "content_block":{"type":"tool_use","id":"toolu_1","name":"grep","input":{}}}],
    ["content_block_delta", {"type":"content_block_delta","index":1,
      "delta":{"type":"input_json_delta","partial_json":""}}],
    ["content_block_delta", {"type":"content_block_delta","index":1,
      "delta":{"type":"input_json_delta","partial_json":"{\"pattern\": \"TO"}}],
    ["content_block_delta", {"type":"content_block_delta","index":1,
      "delta":{"type":"input_json_delta","partial_json":"DO\"}"}}],
    ["content_block_stop", {"type":"content_block_stop","index":1}],
    ["message_delta", {"type":"message_delta","delta":{"stop_reason":"tool_use",
      "stop_sequence":null},"usage":{"output_tokens":17}}],
    ["message_stop", {"type":"message_stop"}]
  ])");
  Json events = Json::array();
  for (const Json& e : raw) events.push_back({{"event", e[0]}, {"data", e[1]}});
  FakeServer server(Json{{"/v1/messages", {{{"sse_events", events}, {"chunk_delay_s", 0.05}}}}});
  ModelRequest req = Anthropic(server);
  req.stream = true;
  Deltas deltas;
  Result<ModelReply> reply = CallModel(req, deltas.Hooks());
  Clock::time_point done = Clock::now();
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->text, "Let me look.");
  EXPECT_EQ(deltas.pieces, (std::vector<std::string>{"Let me ", "look."}));
  EXPECT_GE(std::chrono::duration_cast<std::chrono::milliseconds>(done - deltas.at[0]).count(),
            200);
  ASSERT_EQ(reply->tool_calls.size(), 1u);
  EXPECT_EQ(reply->tool_calls[0].id, "toolu_1");
  EXPECT_EQ(reply->tool_calls[0].name, "grep");
  EXPECT_EQ(reply->tool_calls[0].arguments, Json({{"pattern", "TODO"}}));
  EXPECT_EQ(reply->input_tokens, 30);
  EXPECT_EQ(reply->output_tokens, 17);
  EXPECT_EQ(reply->stop_reason, "tool_use");
  EXPECT_EQ(server.Requests().at(0)["body"]["stream"], true);
}

TEST(ModelTest, AnthropicForcedToolStructuredOutputAndRequestShape) {
  Json body = Json::parse(R"({"id":"msg_1","type":"message","role":"assistant",
    "model":"claude-test","stop_reason":"tool_use","stop_sequence":null,
    "content":[{"type":"tool_use","id":"toolu_9","name":"review",
                "input":{"verdict":"ok","score":3}}],
    "usage":{"input_tokens":40,"output_tokens":9}})");
  FakeServer server(Json{{"/v1/messages", {{{"body", body}}}}});
  ModelRequest req = Anthropic(server);
  req.output_schema =
      Json::parse(R"({"type":"object","properties":{"verdict":{"type":"string"}}})");
  req.output_name = "review";
  req.tools.push_back({.name = "read", .description = "Reads", .parameters = {{"type", "object"}}});
  req.messages.push_back(
      {.role = "assistant",
       .content = "Reading.",
       .tool_calls = {{.id = "toolu_0", .name = "read", .arguments = {{"path", "b"}}}}});
  req.messages.push_back(
      {.role = "tool", .content = "no such file", .tool_call_id = "toolu_0", .is_error = true});
  Result<ModelReply> reply = CallModel(req, {});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->structured, Json::parse(R"({"verdict":"ok","score":3})"));
  EXPECT_EQ(Json::parse(reply->text), reply->structured);
  EXPECT_TRUE(reply->tool_calls.empty()) << "the output tool is not a tool call";
  EXPECT_EQ(reply->input_tokens, 40);
  EXPECT_EQ(reply->output_tokens, 9);
  EXPECT_EQ(reply->stop_reason, "tool_use");

  Json got = server.Requests().at(0);
  EXPECT_EQ(got["path"], "/v1/messages");
  EXPECT_EQ(got["headers"]["anthropic-version"], "2023-06-01");
  ExpectKeyOnlyIn(got, "x-api-key", kKey);
  EXPECT_FALSE(got["headers"].contains("Authorization"));
  const Json& sent = got["body"];
  EXPECT_EQ(sent["system"], "You are terse.");
  EXPECT_EQ(sent["max_tokens"], 4096);
  EXPECT_EQ(sent["tool_choice"], Json::parse(R"({"type":"tool","name":"review"})"));
  ASSERT_EQ(sent["tools"].size(), 2u);
  EXPECT_EQ(sent["tools"][0], Json::parse(R"({"name":"read","description":"Reads",
            "input_schema":{"type":"object"}})"));
  EXPECT_EQ(sent["tools"][1]["name"], "review");
  EXPECT_EQ(sent["tools"][1]["input_schema"], req.output_schema);
  EXPECT_EQ(sent["messages"], Json::parse(R"([
    {"role":"user","content":[{"type":"text","text":"Say hi"}]},
    {"role":"assistant","content":[{"type":"text","text":"Reading."},
      {"type":"tool_use","id":"toolu_0","name":"read","input":{"path":"b"}}]},
    {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_0",
      "content":"no such file","is_error":true}]}])"));
}

TEST(ModelTest, AnthropicNonObjectSchemaIsWrapped) {
  FakeServer server(Json{{"/v1/messages", {{{"reply", {{"structured", {{"value", {1, 2}}}}}}}}}});
  ModelRequest req = Anthropic(server);
  req.output_schema = {{"type", "array"}};
  Result<ModelReply> reply = CallModel(req, {});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->structured, Json({1, 2}));
  EXPECT_EQ(server.Requests().at(0)["body"]["tools"][0]["input_schema"]["type"], "object");
}

TEST(ModelTest, RendersNeutralRepliesInBothFormatsStreamedOrNot) {
  // The server's provider-neutral "reply" form, used by the CLI's e2e tests.
  Json reply = {{"text", "hello there"},
                {"tool_calls", {{{"id", "t1"}, {"name", "read"}, {"arguments", {{"path", "a"}}}}}},
                {"input_tokens", 4},
                {"output_tokens", 6}};
  for (const char* provider : {"openai", "anthropic"}) {
    for (bool stream : {false, true}) {
      FakeServer server(
          Json{{kChat, {{{"reply", reply}}}}, {"/v1/messages", {{{"reply", reply}}}}});
      ModelRequest req = std::string(provider) == "openai" ? OpenAi(server) : Anthropic(server);
      req.stream = stream;
      Result<ModelReply> got = CallModel(req, {});
      ASSERT_TRUE(got.ok()) << provider << stream << got.status().ToString();
      EXPECT_EQ(got->text, "hello there") << provider << stream;
      ASSERT_EQ(got->tool_calls.size(), 1u) << provider << stream;
      EXPECT_EQ(got->tool_calls[0].arguments, Json({{"path", "a"}})) << provider << stream;
      EXPECT_EQ(got->input_tokens, 4) << provider << stream;
      EXPECT_EQ(got->output_tokens, 6) << provider << stream;
    }
  }
}

TEST(ModelTest, RetriesA429HonouringRetryAfter) {
  Json limited = {{"status", 429},
                  {"headers", {{"Retry-After", "1"}}},
                  {"body", {{"error", {{"message", "Rate limit reached"}}}}}};
  FakeServer server(Json{{kChat, {limited, kOk}}});
  // The wait is on the call's clock: in virtual time it passes at once, and
  // the clock says how long it was.
  smithers::ManualClock clock(1'000'000, smithers::ManualClock::Mode::kVirtual);
  Result<ModelReply> reply = CallModel(OpenAi(server), {.clock = &clock});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->text, "Hello");
  EXPECT_EQ(reply->http_attempts, 2);
  // retry_base_ms is 10: a wait of exactly 1 s came from Retry-After.
  EXPECT_EQ(clock.waited_ms(), 1000);
  EXPECT_EQ(clock.NowMs(), 1'001'000);
  EXPECT_EQ(server.Requests().size(), 2u);
}

TEST(ModelTest, BackoffDoublesOnTheCallsClockWithJitter) {
  Json failing = {{"status", 503}, {"body", {{"error", {{"message", "overloaded"}}}}}};
  FakeServer server(Json{{kChat, {failing, failing, failing, kOk}}});
  ModelRequest req = OpenAi(server);
  req.retry_base_ms = 1000;
  req.max_http_retries = 3;
  smithers::ManualClock clock(0, smithers::ManualClock::Mode::kVirtual);
  Result<ModelReply> reply = CallModel(req, {.clock = &clock});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->http_attempts, 4);
  // Equal jitter: each wait is between half and all of 1 s, 2 s, 4 s.
  EXPECT_GE(clock.waited_ms(), 500 + 1000 + 2000);
  EXPECT_LE(clock.waited_ms(), 1000 + 2000 + 4000);
}

TEST(ModelTest, AWaitPastTheDeadlineFailsAtOnce) {
  FakeServer server(Json{{kChat, {{{"status", 429}, {"headers", {{"Retry-After", "30"}}}}}}});
  ModelRequest req = OpenAi(server);
  req.timeout_ms = 10'000;
  smithers::ManualClock clock(0, smithers::ManualClock::Mode::kVirtual);
  Result<ModelReply> reply = CallModel(req, {.clock = &clock});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kDeadlineExceeded) << reply.status().ToString();
  EXPECT_EQ(clock.waited_ms(), 0) << "a 30 s wait cannot fit in a 10 s budget: no wait at all";
  EXPECT_EQ(server.Requests().size(), 1u);
}

TEST(ModelTest, RetriesA500TwiceThenSucceeds) {
  Json failing = {{"status", 500}, {"body", {{"error", {{"message", "boom"}}}}}};
  FakeServer server(Json{{kChat, {failing, failing, kOk}}});
  Result<ModelReply> reply = CallModel(OpenAi(server), {});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->http_attempts, 3);
  EXPECT_EQ(server.Requests().size(), 3u);
}

TEST(ModelTest, A500ForeverIsUnavailableAfterAllRetries) {
  FakeServer server(
      Json{{kChat, {{{"status", 503}, {"body", {{"error", {{"message", "overloaded"}}}}}}}}});
  ModelRequest req = OpenAi(server);
  req.max_http_retries = 2;
  Result<ModelReply> reply = CallModel(req, {});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(reply.status().message().find("HTTP 503"), std::string::npos);
  EXPECT_NE(reply.status().message().find("overloaded"), std::string::npos);
  EXPECT_NE(reply.status().message().find("3 attempts"), std::string::npos);
  EXPECT_EQ(server.Requests().size(), 3u);
}

TEST(ModelTest, ConnectionRefusedIsRetriedThenUnavailable) {
  FakeServer server(Json::object());
  ModelRequest req = OpenAi(server);
  server.Stop();
  req.max_http_retries = 1;
  Result<ModelReply> reply = CallModel(req, {});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kUnavailable) << reply.status().ToString();
  EXPECT_NE(reply.status().message().find("2 attempts"), std::string::npos);
}

TEST(ModelTest, ATruncatedStreamIsRetried) {
  Json partial = Sse({{{"choices", {{{"index", 0}, {"delta", {{"content", "Hi"}}}}}}}});
  Json complete = Sse({{{"choices", {{{"index", 0}, {"delta", {{"content", "Hi"}}}}}}}, "[DONE]"});
  FakeServer server(Json{{kChat, {{{"sse_events", partial}}, {{"sse_events", complete}}}}});
  ModelRequest req = OpenAi(server);
  req.stream = true;
  Result<ModelReply> reply = CallModel(req, {});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->text, "Hi");
  EXPECT_EQ(reply->http_attempts, 2);
}

TEST(ModelTest, AHangPastTheTimeoutIsDeadlineExceeded) {
  FakeServer server(Json{{kChat, {{{"delay_s", 10}, {"body", OpenAiBody("late")}}}}});
  ModelRequest req = OpenAi(server);
  req.timeout_ms = 300;
  Clock::time_point t0 = Clock::now();
  Result<ModelReply> reply = CallModel(req, {});
  int64_t took = MsSince(t0);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kDeadlineExceeded) << reply.status().ToString();
  EXPECT_GE(took, 250);
  EXPECT_LT(took, 1000);
  EXPECT_EQ(server.Requests().size(), 1u) << "a timeout is not retried";
}

// Until the server logged `n` requests (it logs one as it arrives, before
// its scripted delay); false after 10 s.
bool WaitForRequests(const FakeServer& server, size_t n) {
  Clock::time_point deadline = Clock::now() + std::chrono::seconds(10);
  while (server.Requests().size() < n) {
    if (Clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST(ModelTest, CancelAbortsTheRequestInFlight) {
  FakeServer server(Json{{kChat, {{{"delay_s", 10}, {"body", OpenAiBody("late")}}}}});
  std::atomic<bool> cancel{false};
  std::atomic<bool> in_flight{false};
  Clock::time_point cancelled_at;
  std::thread canceller([&] {
    in_flight = WaitForRequests(server, 1);  // the server holds it now
    cancelled_at = Clock::now();
    cancel = true;
  });
  Result<ModelReply> reply = CallModel(OpenAi(server), {.cancel = &cancel});
  Clock::time_point returned = Clock::now();
  canceller.join();
  ASSERT_TRUE(in_flight) << "the request never reached the server";
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kCancelled) << reply.status().ToString();
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(returned - cancelled_at).count(),
            200);
}

TEST(ModelTest, CancelDuringABackoffWait) {
  FakeServer server(Json{{kChat, {{{"status", 429}, {"headers", {{"Retry-After", "30"}}}}}}});
  std::atomic<bool> cancel{false};
  std::atomic<bool> answered{false};
  Clock::time_point cancelled_at;
  std::thread canceller([&] {
    // The 429 was sent: the call waits out its Retry-After (30 s) now.
    answered = WaitForRequests(server, 1);
    cancelled_at = Clock::now();
    cancel = true;
  });
  Result<ModelReply> reply = CallModel(OpenAi(server), {.cancel = &cancel});
  Clock::time_point returned = Clock::now();
  canceller.join();
  ASSERT_TRUE(answered) << "the request never reached the server";
  EXPECT_EQ(reply.status().code(), StatusCode::kCancelled) << reply.status().ToString();
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(returned - cancelled_at).count(),
            1000);
  EXPECT_EQ(server.Requests().size(), 1u) << "cancelled before the retry";
}

TEST(ModelTest, A401IsInvalidArgumentWithoutTheKey) {
  // The server echoes the key, as some do: it must not reach the message.
  Json denied = {{"status", 401},
                 {"body",
                  {{"error",
                    {{"message", std::string("Incorrect API key provided: ") + kKey},
                     {"type", "invalid_request_error"}}}}}};
  FakeServer server(Json{{kChat, {denied}}});
  Result<ModelReply> reply = CallModel(OpenAi(server), {});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(reply.status().message().find("HTTP 401"), std::string::npos);
  EXPECT_NE(reply.status().message().find("Incorrect API key"), std::string::npos);
  EXPECT_EQ(reply.status().ToString().find(kKey), std::string::npos) << reply.status().ToString();
  EXPECT_EQ(reply.status().ToString().find("1234567890abcdef"), std::string::npos);
  EXPECT_EQ(server.Requests().size(), 1u) << "a 4xx is not retried";
}

TEST(ModelTest, MalformedJsonIsInvalidArgument) {
  FakeServer server(Json{{kChat, {{{"body", "{\"choices\": [oops"}}}},
                         {"/v1/messages", {{{"body", {{"content", "not an array"}}}}}}});
  Result<ModelReply> openai = CallModel(OpenAi(server), {});
  EXPECT_EQ(openai.status().code(), StatusCode::kInvalidArgument) << openai.status().ToString();
  Result<ModelReply> anthropic = CallModel(Anthropic(server), {});
  EXPECT_EQ(anthropic.status().code(), StatusCode::kInvalidArgument)
      << anthropic.status().ToString();
}

TEST(ModelTest, UnknownProviderIsInvalidArgument) {
  ModelRequest req{.provider = "nope"};
  EXPECT_EQ(CallModel(req, {}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace smithers::agents
