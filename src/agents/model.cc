// CallModel: the two wire formats (OpenAI Chat Completions, Anthropic
// Messages), streamed or not, over HttpPost, with the retry policy.
#include "agents/model.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <random>
#include <utility>

#include "agents/curl_api.h"
#include "agents/http.h"
#include "base/json_limits.h"
#include "base/redact.h"
#include "smithers/clock.h"

namespace smithers::agents {
namespace {

constexpr int64_t kMaxRetryWaitMs = 60000;
constexpr int64_t kSleepStepMs = 20;  // backoff sleeps wake this often to see a cancel
constexpr int kAnthropicDefaultMaxTokens = 4096;
constexpr size_t kMaxErrorTextBytes = 500;

bool IsOpenAi(const ModelRequest& r) { return r.provider != "anthropic"; }

// A provider's JSON, parsed only when it nests no deeper than a value may
// (base/json_limits.h) plus the provider's own envelope (choices[0].message
// .tool_calls[0].function...); else discarded, like text that is not JSON.
constexpr int kProviderEnvelopeDepth = 8;
Json ParseLimited(std::string_view text, int envelope) {
  if (!base::CheckJsonDepth(text, base::MaxJsonDepth() + envelope).ok()) {
    return Json(Json::value_t::discarded);
  }
  return Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
}

// Tool and schema names must match ^[a-zA-Z0-9_-]{1,64}$ for both providers.
std::string WireName(const std::string& name) {
  std::string out;
  for (char c : name) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
    out += ok ? c : '_';
  }
  if (out.empty()) out = "output";
  return out.substr(0, 64);
}

// Anthropic tool input must be an object: other schemas are wrapped in one.
bool NeedsWrap(const Json& schema) {
  return !(schema.is_object() && schema.value("type", Json()) == "object");
}

Json ParseArguments(const std::string& text) {
  if (text.empty()) return Json::object();
  Json parsed = ParseLimited(text, 0);
  // A model can emit broken JSON; keep the text so the tool layer reports it
  // back to the model rather than failing the whole turn.
  return parsed.is_discarded() ? Json(text) : parsed;
}

// ---- request bodies ----

Json OpenAiBody(const ModelRequest& r) {
  Json messages = Json::array();
  if (!r.system.empty()) messages.push_back({{"role", "system"}, {"content", r.system}});
  for (const Message& m : r.messages) {
    if (m.role == "tool") {
      messages.push_back(
          {{"role", "tool"}, {"tool_call_id", m.tool_call_id}, {"content", m.content}});
      continue;
    }
    Json msg = {{"role", m.role}, {"content", m.content}};
    if (!m.tool_calls.empty()) {
      if (m.content.empty()) msg["content"] = nullptr;
      Json calls = Json::array();
      for (const ToolCall& c : m.tool_calls) {
        calls.push_back({{"id", c.id},
                         {"type", "function"},
                         {"function",
                          {{"name", c.name},
                           {"arguments", c.arguments.is_string() ? c.arguments.get<std::string>()
                                                                 : c.arguments.dump()}}}});
      }
      msg["tool_calls"] = std::move(calls);
    }
    messages.push_back(std::move(msg));
  }
  Json body = {{"model", r.model}, {"messages", std::move(messages)}};
  if (!r.tools.empty()) {
    Json tools = Json::array();
    for (const ToolSpec& t : r.tools) {
      tools.push_back(
          {{"type", "function"},
           {"function",
            {{"name", t.name}, {"description", t.description}, {"parameters", t.parameters}}}});
    }
    body["tools"] = std::move(tools);
  }
  if (!r.output_schema.is_null()) {
    body["response_format"] = {
        {"type", "json_schema"},
        {"json_schema",
         {{"name", WireName(r.output_name)}, {"schema", r.output_schema}, {"strict", false}}}};
  }
  if (r.temperature >= 0) body["temperature"] = r.temperature;
  if (r.max_tokens > 0) body["max_tokens"] = r.max_tokens;
  if (r.stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};  // usage in the last chunk
  }
  return body;
}

Json AnthropicBody(const ModelRequest& r) {
  // Anthropic wants user and assistant turns to alternate: consecutive turns
  // of one role (tool results, then a user's note) merge into one message.
  Json messages = Json::array();
  auto append = [&messages](const std::string& role, Json blocks) {
    if (blocks.empty()) return;
    if (!messages.empty() && messages.back()["role"] == role) {
      for (Json& b : blocks) messages.back()["content"].push_back(std::move(b));
    } else {
      messages.push_back({{"role", role}, {"content", std::move(blocks)}});
    }
  };
  for (const Message& m : r.messages) {
    Json blocks = Json::array();
    if (m.role == "tool") {
      blocks.push_back({{"type", "tool_result"},
                        {"tool_use_id", m.tool_call_id},
                        {"content", m.content},
                        {"is_error", m.is_error}});
      append("user", std::move(blocks));
      continue;
    }
    // Empty text blocks are refused by the API: leave them out.
    if (!m.content.empty()) blocks.push_back({{"type", "text"}, {"text", m.content}});
    for (const ToolCall& c : m.tool_calls) {
      Json input = c.arguments.is_object() ? c.arguments : Json::object();
      blocks.push_back({{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", input}});
    }
    append(m.role == "assistant" ? "assistant" : "user", std::move(blocks));
  }
  Json body = {{"model", r.model},
               {"max_tokens", r.max_tokens > 0 ? r.max_tokens : kAnthropicDefaultMaxTokens},
               {"messages", std::move(messages)}};
  if (!r.system.empty()) body["system"] = r.system;
  Json tools = Json::array();
  for (const ToolSpec& t : r.tools) {
    tools.push_back(
        {{"name", t.name}, {"description", t.description}, {"input_schema", t.parameters}});
  }
  if (!r.output_schema.is_null()) {
    std::string name = WireName(r.output_name);
    Json schema = r.output_schema;
    if (NeedsWrap(schema)) {
      schema = {{"type", "object"},
                {"properties", {{"value", schema}}},
                {"required", Json::array({"value"})}};
    }
    tools.push_back({{"name", name},
                     {"description", "Give the final answer as this tool's input."},
                     {"input_schema", std::move(schema)}});
    body["tool_choice"] = {{"type", "tool"}, {"name", name}};
  }
  if (!tools.empty()) body["tools"] = std::move(tools);
  if (r.temperature >= 0) body["temperature"] = r.temperature;
  if (r.stream) body["stream"] = true;
  return body;
}

// ---- replies ----

// Builds the reply from Anthropic content blocks (a whole message, or the
// blocks a stream assembled): the forced output tool becomes `structured`.
void FinishAnthropic(const ModelRequest& r, const Json& content, ModelReply& reply) {
  std::string output_tool = r.output_schema.is_null() ? "" : WireName(r.output_name);
  for (const Json& block : content) {
    if (!block.is_object()) continue;
    std::string type = block.value("type", "");
    if (type == "text") {
      reply.text += block.value("text", "");
    } else if (type == "tool_use") {
      Json input = block.contains("input") ? block["input"] : Json::object();
      if (!output_tool.empty() && block.value("name", "") == output_tool) {
        reply.structured =
            NeedsWrap(r.output_schema) && input.is_object() && input.contains("value")
                ? input["value"]
                : input;
        continue;
      }
      reply.tool_calls.push_back(
          {.id = block.value("id", ""), .name = block.value("name", ""), .arguments = input});
    }
  }
  if (!reply.structured.is_null()) reply.text = reply.structured.dump();
}

void AddAnthropicUsage(const Json& usage, ModelReply& reply) {
  if (!usage.is_object()) return;
  // Cached prompt tokens are counted apart from input_tokens; all were input.
  int64_t input = 0;
  bool any = false;
  for (const char* k : {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"}) {
    if (usage.contains(k) && usage[k].is_number_integer()) {
      input += usage[k].get<int64_t>();
      any = true;
    }
  }
  if (any) reply.input_tokens = input;
  if (usage.contains("output_tokens") && usage["output_tokens"].is_number_integer()) {
    reply.output_tokens = usage["output_tokens"].get<int64_t>();  // cumulative in a stream
  }
}

void FinishOpenAi(const ModelRequest& r, ModelReply& reply) {
  if (!r.output_schema.is_null() && reply.tool_calls.empty()) {
    Json parsed = ParseLimited(reply.text, 0);
    if (!parsed.is_discarded()) reply.structured = std::move(parsed);
  }
}

Status Malformed(const ModelRequest& r, const std::string& what) {
  return InvalidArgumentError(r.provider + ": malformed reply: " + what);
}

Result<ModelReply> ParseOpenAi(const ModelRequest& r, const std::string& body) {
  Json j = ParseLimited(body, kProviderEnvelopeDepth);
  if (j.is_discarded() || !j.is_object()) return Malformed(r, "the body is not a JSON object");
  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty() ||
      !j["choices"][0].is_object() || !j["choices"][0].contains("message") ||
      !j["choices"][0]["message"].is_object()) {
    return Malformed(r, "no choices[0].message");
  }
  ModelReply reply;
  try {
    const Json& choice = j["choices"][0];
    const Json& msg = choice["message"];
    if (msg.contains("content") && msg["content"].is_string()) reply.text = msg["content"];
    if (msg.contains("tool_calls") && msg["tool_calls"].is_array()) {
      for (const Json& c : msg["tool_calls"]) {
        const Json fn = c.value("function", Json::object());
        reply.tool_calls.push_back({.id = c.value("id", ""),
                                    .name = fn.value("name", ""),
                                    .arguments = ParseArguments(fn.value("arguments", ""))});
      }
    }
    if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) {
      reply.stop_reason = choice["finish_reason"];
    }
    if (j.contains("usage") && j["usage"].is_object()) {
      reply.input_tokens = j["usage"].value("prompt_tokens", int64_t{0});
      reply.output_tokens = j["usage"].value("completion_tokens", int64_t{0});
    }
  } catch (const Json::exception& e) {
    return Malformed(r, e.what());
  }
  FinishOpenAi(r, reply);
  return reply;
}

Result<ModelReply> ParseAnthropic(const ModelRequest& r, const std::string& body) {
  Json j = ParseLimited(body, kProviderEnvelopeDepth);
  if (j.is_discarded() || !j.is_object()) return Malformed(r, "the body is not a JSON object");
  if (!j.contains("content") || !j["content"].is_array()) return Malformed(r, "no content array");
  ModelReply reply;
  try {
    FinishAnthropic(r, j["content"], reply);
    if (j.contains("stop_reason") && j["stop_reason"].is_string()) {
      reply.stop_reason = j["stop_reason"];
    }
    AddAnthropicUsage(j.value("usage", Json()), reply);
  } catch (const Json::exception& e) {
    return Malformed(r, e.what());
  }
  return reply;
}

// ---- streaming ----

// Server-sent events, fed as they arrive; assembles a ModelReply.
class StreamAssembler {
 public:
  StreamAssembler(const ModelRequest& r, const CallHooks& hooks) : r_(r), hooks_(hooks) {}

  // False when the stream cannot go on; error() says why.
  bool Feed(std::string_view chunk) {
    buffer_.append(chunk);
    size_t start = 0;
    for (;;) {
      size_t nl = buffer_.find('\n', start);
      if (nl == std::string::npos) break;
      std::string_view line(buffer_.data() + start, nl - start);
      start = nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!Line(line)) return false;
    }
    buffer_.erase(0, start);
    return true;
  }

  // After the transfer: the assembled reply, or why there is none.
  Result<ModelReply> Finish() {
    if (!error_.ok()) return error_;
    std::string rest = std::move(buffer_);
    buffer_.clear();
    if (!rest.empty() && !Line(rest)) return error_;
    if (!Dispatch()) return error_;
    // Without its end marker a stream may have lost its tail: try again.
    if (!done_) return UnavailableError(r_.provider + ": the event stream ended early");
    if (IsOpenAi(r_)) {
      for (auto& [index, call] : openai_calls_) {
        reply_.tool_calls.push_back(
            {.id = call.id, .name = call.name, .arguments = ParseArguments(call.arguments)});
      }
      FinishOpenAi(r_, reply_);
    } else {
      Json content = Json::array();
      for (auto& [index, block] : blocks_) {
        if (block.value("type", "") == "tool_use") {
          const std::string& partial = partial_json_[index];
          block["input"] =
              partial.empty() ? block.value("input", Json::object()) : ParseArguments(partial);
        }
        content.push_back(std::move(block));
      }
      reply_.text.clear();  // rebuilt from the blocks
      FinishAnthropic(r_, content, reply_);
    }
    return std::move(reply_);
  }

  const Status& error() const { return error_; }

 private:
  struct PartialCall {
    std::string id;
    std::string name;
    std::string arguments;
  };

  bool Line(std::string_view line) {
    if (line.empty()) return Dispatch();
    if (line[0] == ':') return true;  // comment / keep-alive
    size_t colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
    if (field == "data") {
      if (has_data_) data_ += '\n';
      data_.append(value);
      has_data_ = true;
    } else if (field == "event") {
      event_ = std::string(value);
    }
    return true;
  }

  bool Dispatch() {
    if (!has_data_) {
      event_.clear();
      return true;
    }
    std::string data = std::move(data_);
    data_.clear();
    event_.clear();
    has_data_ = false;
    if (IsOpenAi(r_) && data == "[DONE]") {
      done_ = true;
      return true;
    }
    Json j = ParseLimited(data, kProviderEnvelopeDepth);
    if (j.is_discarded() || !j.is_object()) {
      error_ = Malformed(r_, "an event is not a JSON object");
      return false;
    }
    try {
      return IsOpenAi(r_) ? OpenAiEvent(j) : AnthropicEvent(j);
    } catch (const Json::exception& e) {
      error_ = Malformed(r_, e.what());
      return false;
    }
  }

  void Text(const std::string& piece) {
    if (piece.empty()) return;
    reply_.text += piece;
    if (hooks_.on_text_delta) hooks_.on_text_delta(piece);
  }

  bool StreamError(const Json& j) {
    const Json err = j.value("error", Json::object());
    std::string message = err.is_object() ? err.value("message", "") : "";
    // Overloaded / server errors mid-stream are worth another attempt.
    error_ = UnavailableError(
        r_.provider + ": error in the event stream: " + (message.empty() ? j.dump() : message));
    return false;
  }

  bool OpenAiEvent(const Json& j) {
    if (j.contains("error")) return StreamError(j);
    if (j.contains("usage") && j["usage"].is_object()) {
      reply_.input_tokens = j["usage"].value("prompt_tokens", int64_t{0});
      reply_.output_tokens = j["usage"].value("completion_tokens", int64_t{0});
    }
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return true;
    const Json& choice = j["choices"][0];
    if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) {
      reply_.stop_reason = choice["finish_reason"];
    }
    if (!choice.contains("delta") || !choice["delta"].is_object()) return true;
    const Json& delta = choice["delta"];
    if (delta.contains("content") && delta["content"].is_string()) Text(delta["content"]);
    if (delta.contains("tool_calls") && delta["tool_calls"].is_array()) {
      for (const Json& c : delta["tool_calls"]) {
        PartialCall& call = openai_calls_[c.value("index", 0)];
        if (c.contains("id") && c["id"].is_string()) call.id = c["id"];
        const Json fn = c.value("function", Json::object());
        // The name comes whole in the first piece; the arguments in pieces.
        if (fn.contains("name") && fn["name"].is_string() && call.name.empty()) {
          call.name = fn["name"];
        }
        if (fn.contains("arguments") && fn["arguments"].is_string()) {
          call.arguments += fn["arguments"].get<std::string>();
        }
      }
    }
    return true;
  }

  bool AnthropicEvent(const Json& j) {
    std::string type = j.value("type", "");
    if (type == "error") return StreamError(j);
    if (type == "message_start") {
      AddAnthropicUsage(j.value("message", Json::object()).value("usage", Json()), reply_);
    } else if (type == "content_block_start") {
      int index = j.value("index", 0);
      blocks_[index] = j.value("content_block", Json::object());
      if (blocks_[index].value("type", "") == "text") Text(blocks_[index].value("text", ""));
    } else if (type == "content_block_delta") {
      int index = j.value("index", 0);
      const Json delta = j.value("delta", Json::object());
      std::string delta_type = delta.value("type", "");
      if (delta_type == "text_delta") {
        std::string piece = delta.value("text", "");
        Json& block = blocks_[index];
        block["type"] = "text";
        block["text"] = block.value("text", "") + piece;
        Text(piece);
      } else if (delta_type == "input_json_delta") {
        partial_json_[index] += delta.value("partial_json", "");
      }
    } else if (type == "message_delta") {
      const Json delta = j.value("delta", Json::object());
      if (delta.contains("stop_reason") && delta["stop_reason"].is_string()) {
        reply_.stop_reason = delta["stop_reason"];
      }
      AddAnthropicUsage(j.value("usage", Json()), reply_);
    } else if (type == "message_stop") {
      done_ = true;
    }
    return true;  // ping, content_block_stop and unknown events carry nothing we need
  }

  const ModelRequest& r_;
  const CallHooks& hooks_;
  std::string buffer_;  // bytes after the last complete line
  std::string data_;    // the current event's data lines
  std::string event_;
  bool has_data_ = false;
  bool done_ = false;
  Status error_;
  ModelReply reply_;
  std::map<int, PartialCall> openai_calls_;  // by index
  std::map<int, Json> blocks_;               // Anthropic content blocks by index
  std::map<int, std::string> partial_json_;  // tool_use input pieces by block index
};

// ---- errors and retries ----

// The provider's own error message ({"error": {"message"}} for both), or the
// start of the body. Never a header: the key lives only there.
std::string ProviderMessage(const ModelRequest& r, const std::string& body) {
  Json j = ParseLimited(body, kProviderEnvelopeDepth);
  std::string message;
  if (!j.is_discarded() && j.is_object() && j.contains("error")) {
    const Json& err = j["error"];
    if (err.is_object() && err.contains("message") && err["message"].is_string()) {
      message = err["message"];
    } else if (err.is_string()) {
      message = err;
    }
  }
  if (message.empty()) message = body.substr(0, kMaxErrorTextBytes);
  // A server may echo what it was sent; make sure that is never the key.
  if (!r.api_key.empty()) {
    for (size_t at = message.find(r.api_key); at != std::string::npos;
         at = message.find(r.api_key, at)) {
      message.replace(at, r.api_key.size(), "[REDACTED]");
    }
  }
  return base::Redact(message);
}

// Retry-After in milliseconds (delay-seconds or an HTTP date), or -1.
int64_t RetryAfterMs(const HttpResponse& res, const Clock& clock) {
  auto it = res.headers.find("retry-after");
  if (it == res.headers.end() || it->second.empty()) return -1;
  const std::string& v = it->second;
  if (std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) {
    return v.size() > 6 ? kMaxRetryWaitMs : std::stoll(v) * 1000;
  }
  const CurlApi* curl = Curl();
  time_t when = curl != nullptr ? curl->getdate(v.c_str(), nullptr) : -1;
  if (when < 0) return -1;
  return std::max<int64_t>(0, static_cast<int64_t>(when) * 1000 - clock.NowMs());
}

bool Cancelled(const CallHooks& hooks) { return hooks.cancel != nullptr && hooks.cancel->load(); }

// Sleeps `ms` on `clock` in short steps; false when cancelled meanwhile.
bool SleepUnlessCancelled(int64_t ms, const CallHooks& hooks, Clock& clock) {
  int64_t until = clock.MonotonicMs() + ms;
  for (;;) {
    if (Cancelled(hooks)) return false;
    int64_t left = until - clock.MonotonicMs();
    if (left <= 0) return true;
    clock.SleepMs(std::min(left, kSleepStepMs));
  }
}

std::string Endpoint(const ModelRequest& r) {
  std::string base = r.base_url;
  if (base.empty()) base = IsOpenAi(r) ? "https://api.openai.com/v1" : "https://api.anthropic.com";
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (IsOpenAi(r)) return base + "/chat/completions";
  // An Anthropic base URL given with its version ("https://host/v1") works too.
  bool versioned = base.size() >= 3 && base.compare(base.size() - 3, 3, "/v1") == 0;
  return base + (versioned ? "/messages" : "/v1/messages");
}

std::vector<std::string> Headers(const ModelRequest& r) {
  std::vector<std::string> h = {"Content-Type: application/json"};
  if (r.stream) h.emplace_back("Accept: text/event-stream");
  if (IsOpenAi(r)) {
    if (!r.api_key.empty()) h.push_back("Authorization: Bearer " + r.api_key);
  } else {
    if (!r.api_key.empty()) h.push_back("x-api-key: " + r.api_key);
    if (r.headers.count("anthropic-version") == 0) h.emplace_back("anthropic-version: 2023-06-01");
  }
  for (const auto& [name, value] : r.headers) h.push_back(name + ": " + value);
  return h;
}

std::string TimedOut(const ModelRequest& r, const std::string& last_failure) {
  return r.provider + ": no reply within " + std::to_string(r.timeout_ms) + " ms" +
         (last_failure.empty() ? "" : " (last failure: " + last_failure + ")");
}

}  // namespace

Result<ModelReply> CallModel(const ModelRequest& request, const CallHooks& hooks) {
  if (request.provider != "openai" && request.provider != "anthropic") {
    return InvalidArgumentError("unknown model provider \"" + request.provider +
                                "\" (openai or anthropic)");
  }
  Json body = IsOpenAi(request) ? OpenAiBody(request) : AnthropicBody(request);
  HttpRequest http{.url = Endpoint(request),
                   .headers = Headers(request),
                   .body = body.dump(),
                   .cancel = hooks.cancel};
  // timeout_ms bounds the whole call, retries and their waits included.
  Clock& clock = hooks.clock != nullptr ? *hooks.clock : SystemClock();
  const int64_t start = clock.MonotonicMs();
  const int64_t deadline = request.timeout_ms > 0 ? start + request.timeout_ms : 0;
  const int attempts = std::max(0, request.max_http_retries) + 1;
  std::string last_failure;
  for (int attempt = 1;; ++attempt) {
    if (Cancelled(hooks)) return CancelledError(request.provider + ": request cancelled");
    if (deadline > 0) {
      http.timeout_ms = deadline - clock.MonotonicMs();
      if (http.timeout_ms <= 0) return DeadlineExceededError(TimedOut(request, last_failure));
    }
    StreamAssembler stream(request, hooks);
    http.event_stream_sink = nullptr;
    if (request.stream) {
      http.event_stream_sink = [&stream](std::string_view chunk) { return stream.Feed(chunk); };
    }
    Result<HttpResponse> res = HttpPost(http);
    int64_t retry_after = -1;
    Status failure;
    if (!res.ok()) {
      const Status& s = res.status();
      if (s.code() == StatusCode::kAborted) {
        failure = stream.error();  // the stream assembler stopped the transfer
      } else if (s.code() == StatusCode::kDeadlineExceeded) {
        return DeadlineExceededError(TimedOut(request, last_failure));
      } else {
        failure = Status(s.code(), request.provider + ": " + s.message());
      }
    } else if (res->status >= 200 && res->status < 300) {
      Result<ModelReply> reply = res->streamed       ? stream.Finish()
                                 : IsOpenAi(request) ? ParseOpenAi(request, res->body)
                                                     : ParseAnthropic(request, res->body);
      if (reply.ok()) {
        reply->http_attempts = attempt;
        return reply;
      }
      failure = reply.status();
    } else {
      std::string message = request.provider + ": HTTP " + std::to_string(res->status) + ": " +
                            ProviderMessage(request, res->body);
      bool retryable = res->status == 408 || res->status == 429 || res->status >= 500;
      if (!retryable) return InvalidArgumentError(message);
      failure = UnavailableError(message);
      retry_after = RetryAfterMs(*res, clock);
    }
    if (failure.code() != StatusCode::kUnavailable) return failure;
    last_failure = failure.message();
    if (attempt >= attempts) {
      return UnavailableError(last_failure + " (after " + std::to_string(attempt) +
                              (attempt == 1 ? " attempt)" : " attempts)"));
    }
    int64_t wait = retry_after;
    if (wait < 0) {
      double backoff = static_cast<double>(std::max<int64_t>(0, request.retry_base_ms)) *
                       std::pow(2.0, attempt - 1);
      wait = static_cast<int64_t>(std::min(backoff, static_cast<double>(kMaxRetryWaitMs)));
      // Equal jitter: half the backoff plus a random share of the other half,
      // so many clients throttled at once do not retry in lockstep.
      if (wait > 1) {
        thread_local std::mt19937_64 rng{std::random_device{}()};
        wait = wait / 2 + std::uniform_int_distribution<int64_t>(0, wait - wait / 2)(rng);
      }
    }
    wait = std::min(wait, kMaxRetryWaitMs);
    // A wait that would outlast the deadline fails now rather than at the deadline.
    if (deadline > 0 && clock.MonotonicMs() + wait >= deadline) {
      return DeadlineExceededError(TimedOut(request, last_failure));
    }
    if (!SleepUnlessCancelled(wait, hooks, clock)) {
      return CancelledError(request.provider + ": request cancelled");
    }
  }
}

}  // namespace smithers::agents
