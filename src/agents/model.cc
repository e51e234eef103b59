// CallModel over libcurl: request building and reply parsing for OpenAI Chat
// Completions and Anthropic Messages, streaming (SSE) or not, with retries.
#include "agents/model.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <map>
#include <mutex>
#include <thread>

namespace smithers::agents {
namespace {

// ---- requests ----

Json OpenAiBody(const ModelRequest& r) {
  Json messages = Json::array();
  if (!r.system.empty()) messages.push_back({{"role", "system"}, {"content", r.system}});
  for (const Message& m : r.messages) {
    if (m.role == "tool") {
      messages.push_back(
          {{"role", "tool"}, {"tool_call_id", m.tool_call_id}, {"content", m.content}});
      continue;
    }
    Json j = {{"role", m.role}, {"content", m.content}};
    if (!m.tool_calls.empty()) {
      j["tool_calls"] = Json::array();
      for (const ToolCall& c : m.tool_calls) {
        j["tool_calls"].push_back(
            {{"id", c.id},
             {"type", "function"},
             {"function", {{"name", c.name}, {"arguments", c.arguments.dump()}}}});
      }
    }
    messages.push_back(std::move(j));
  }
  Json body = {{"model", r.model}, {"messages", messages}};
  if (!r.tools.empty()) {
    body["tools"] = Json::array();
    for (const ToolSpec& t : r.tools) {
      body["tools"].push_back(
          {{"type", "function"},
           {"function",
            {{"name", t.name}, {"description", t.description}, {"parameters", t.parameters}}}});
    }
  }
  if (!r.output_schema.is_null()) {
    body["response_format"] = {
        {"type", "json_schema"},
        {"json_schema", {{"name", r.output_name}, {"schema", r.output_schema}, {"strict", false}}}};
  }
  if (r.temperature >= 0) body["temperature"] = r.temperature;
  if (r.max_tokens > 0) body["max_tokens"] = r.max_tokens;
  if (r.stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
  }
  return body;
}

Json AnthropicBody(const ModelRequest& r) {
  Json messages = Json::array();
  for (const Message& m : r.messages) {
    if (m.role == "tool") {
      Json block = {{"type", "tool_result"},
                    {"tool_use_id", m.tool_call_id},
                    {"content", m.content},
                    {"is_error", m.is_error}};
      // Consecutive tool results share one user turn.
      if (!messages.empty() && messages.back()["role"] == "user" &&
          messages.back()["content"].is_array() && !messages.back()["content"].empty() &&
          messages.back()["content"][0].value("type", "") == "tool_result") {
        messages.back()["content"].push_back(block);
      } else {
        messages.push_back({{"role", "user"}, {"content", Json::array({block})}});
      }
      continue;
    }
    if (m.tool_calls.empty()) {
      messages.push_back({{"role", m.role}, {"content", m.content}});
      continue;
    }
    Json content = Json::array();
    if (!m.content.empty()) content.push_back({{"type", "text"}, {"text", m.content}});
    for (const ToolCall& c : m.tool_calls) {
      content.push_back(
          {{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", c.arguments}});
    }
    messages.push_back({{"role", "assistant"}, {"content", content}});
  }
  Json body = {{"model", r.model},
               {"messages", messages},
               {"max_tokens", r.max_tokens > 0 ? r.max_tokens : 4096}};
  if (!r.system.empty()) body["system"] = r.system;
  Json tools = Json::array();
  for (const ToolSpec& t : r.tools) {
    tools.push_back(
        {{"name", t.name}, {"description", t.description}, {"input_schema", t.parameters}});
  }
  if (!r.output_schema.is_null()) {
    tools.push_back({{"name", r.output_name},
                     {"description", "Give the final answer as this tool's input."},
                     {"input_schema", r.output_schema}});
    body["tool_choice"] = {{"type", "tool"}, {"name", r.output_name}};
  }
  if (!tools.empty()) body["tools"] = tools;
  if (r.temperature >= 0) body["temperature"] = r.temperature;
  if (r.stream) body["stream"] = true;
  return body;
}

// ---- replies ----

Json ParseArguments(const std::string& text) {
  if (text.empty()) return Json::object();
  Json j = Json::parse(text, nullptr, false);
  return j.is_discarded() ? Json(text) : j;
}

void FinishOpenAi(const ModelRequest& req, ModelReply& reply) {
  if (!req.output_schema.is_null() && reply.tool_calls.empty()) {
    Json j = Json::parse(reply.text, nullptr, false);
    if (!j.is_discarded()) reply.structured = j;
  }
}

Result<ModelReply> ParseOpenAi(const ModelRequest& req, const Json& j) {
  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) {
    return InvalidArgumentError("reply has no choices");
  }
  ModelReply reply;
  const Json& choice = j["choices"][0];
  const Json& msg = choice.value("message", Json::object());
  if (msg.contains("content") && msg["content"].is_string()) reply.text = msg["content"];
  if (msg.contains("tool_calls") && msg["tool_calls"].is_array()) {
    for (const Json& c : msg["tool_calls"]) {
      const Json& fn = c.value("function", Json::object());
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
  FinishOpenAi(req, reply);
  return reply;
}

void AddAnthropicBlock(const ModelRequest& req, const Json& block, ModelReply& reply) {
  std::string type = block.value("type", "");
  if (type == "text") {
    reply.text += block.value("text", "");
  } else if (type == "tool_use") {
    Json input = block.value("input", Json::object());
    if (!req.output_schema.is_null() && block.value("name", "") == req.output_name) {
      reply.structured = input;
      reply.text = input.dump();
    } else {
      reply.tool_calls.push_back(
          {.id = block.value("id", ""), .name = block.value("name", ""), .arguments = input});
    }
  }
}

Result<ModelReply> ParseAnthropic(const ModelRequest& req, const Json& j) {
  if (!j.contains("content") || !j["content"].is_array()) {
    return InvalidArgumentError("reply has no content");
  }
  ModelReply reply;
  for (const Json& block : j["content"]) AddAnthropicBlock(req, block, reply);
  if (j.contains("stop_reason") && j["stop_reason"].is_string())
    reply.stop_reason = j["stop_reason"];
  if (j.contains("usage") && j["usage"].is_object()) {
    reply.input_tokens = j["usage"].value("input_tokens", int64_t{0});
    reply.output_tokens = j["usage"].value("output_tokens", int64_t{0});
  }
  return reply;
}

// Assembles a streamed reply from SSE `data:` payloads.
class StreamAssembler {
 public:
  StreamAssembler(const ModelRequest& req, const CallHooks& hooks) : req_(req), hooks_(hooks) {}

  // Feeds raw bytes; complete lines are parsed as they arrive.
  void Feed(std::string_view bytes) {
    buffer_.append(bytes);
    size_t nl;
    while ((nl = buffer_.find('\n')) != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.rfind("data:", 0) != 0) continue;
      std::string data = line.substr(5);
      if (!data.empty() && data[0] == ' ') data.erase(0, 1);
      if (data == "[DONE]") continue;
      Json ev = Json::parse(data, nullptr, false);
      if (ev.is_discarded()) {
        malformed_ = true;
        continue;
      }
      if (req_.provider == "anthropic") {
        Anthropic(ev);
      } else {
        OpenAi(ev);
      }
      saw_event_ = true;
    }
  }

  Result<ModelReply> Finish() {
    if (!saw_event_) return InvalidArgumentError("the stream held no events");
    if (error_.is_object()) {
      return InvalidArgumentError("the stream reported an error: " +
                                  error_.value("message", error_.dump()));
    }
    for (auto& [index, call] : partial_calls_) {
      reply_.tool_calls.push_back(
          {.id = call.id, .name = call.name, .arguments = ParseArguments(call.args)});
    }
    partial_calls_.clear();
    if (req_.provider == "anthropic") {
      for (auto& [index, block] : blocks_) {
        if (block.value("type", "") == "tool_use") {
          block["input"] = ParseArguments(block_json_[index]);
        }
        if (block.value("type", "") != "text") AddAnthropicBlock(req_, block, reply_);
      }
    } else {
      FinishOpenAi(req_, reply_);
    }
    return reply_;
  }

 private:
  struct PartialCall {
    std::string id, name, args;
  };

  void Text(const std::string& piece) {
    reply_.text += piece;
    if (hooks_.on_text_delta && !piece.empty()) hooks_.on_text_delta(piece);
  }

  void OpenAi(const Json& ev) {
    if (ev.contains("usage") && ev["usage"].is_object()) {
      reply_.input_tokens = ev["usage"].value("prompt_tokens", int64_t{0});
      reply_.output_tokens = ev["usage"].value("completion_tokens", int64_t{0});
    }
    if (!ev.contains("choices") || !ev["choices"].is_array() || ev["choices"].empty()) return;
    const Json& choice = ev["choices"][0];
    if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) {
      reply_.stop_reason = choice["finish_reason"];
    }
    const Json& delta = choice.value("delta", Json::object());
    if (delta.contains("content") && delta["content"].is_string()) Text(delta["content"]);
    if (delta.contains("tool_calls") && delta["tool_calls"].is_array()) {
      for (const Json& c : delta["tool_calls"]) {
        PartialCall& p = partial_calls_[c.value("index", 0)];
        if (c.contains("id") && c["id"].is_string()) p.id = c["id"];
        const Json& fn = c.value("function", Json::object());
        if (fn.contains("name") && fn["name"].is_string()) p.name += fn["name"].get<std::string>();
        if (fn.contains("arguments") && fn["arguments"].is_string())
          p.args += fn["arguments"].get<std::string>();
      }
    }
  }

  void Anthropic(const Json& ev) {
    std::string type = ev.value("type", "");
    if (type == "message_start" && ev.contains("message")) {
      const Json& usage = ev["message"].value("usage", Json::object());
      reply_.input_tokens = usage.value("input_tokens", int64_t{0});
    } else if (type == "content_block_start") {
      blocks_[ev.value("index", 0)] = ev.value("content_block", Json::object());
    } else if (type == "content_block_delta") {
      int index = ev.value("index", 0);
      const Json& delta = ev.value("delta", Json::object());
      std::string dt = delta.value("type", "");
      if (dt == "text_delta") {
        Text(delta.value("text", ""));
      } else if (dt == "input_json_delta") {
        block_json_[index] += delta.value("partial_json", "");
      }
    } else if (type == "message_delta") {
      const Json& usage = ev.value("usage", Json::object());
      reply_.output_tokens = usage.value("output_tokens", reply_.output_tokens);
      const Json& delta = ev.value("delta", Json::object());
      if (delta.contains("stop_reason") && delta["stop_reason"].is_string()) {
        reply_.stop_reason = delta["stop_reason"];
      }
    } else if (type == "error") {
      error_ = ev.value("error", Json::object());
    }
  }

  const ModelRequest& req_;
  const CallHooks& hooks_;
  std::string buffer_;
  ModelReply reply_;
  std::map<int, PartialCall> partial_calls_;
  std::map<int, Json> blocks_;
  std::map<int, std::string> block_json_;
  Json error_;
  bool saw_event_ = false;
  bool malformed_ = false;
};

// ---- HTTP ----

struct Exchange {
  long status = 0;
  std::string body;
  std::string retry_after;
  const std::atomic<bool>* cancel = nullptr;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  std::string line(data, size * n);
  std::string lower = line;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.rfind("retry-after:", 0) == 0) {
    std::string v = line.substr(12);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
    x->retry_after = v;
  }
  return size * n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* x = static_cast<Exchange*>(user);
  return x->cancel != nullptr && x->cancel->load() ? 1 : 0;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

int64_t RetryAfterMs(const std::string& v) {
  if (v.empty()) return -1;
  char* end = nullptr;
  double secs = std::strtod(v.c_str(), &end);
  if (end != v.c_str() && *end == '\0') return static_cast<int64_t>(secs * 1000);
  std::tm tm{};
  if (strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S", &tm) != nullptr) {
    int64_t at = static_cast<int64_t>(timegm(&tm)) * 1000;
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    return std::max<int64_t>(0, at - now);
  }
  return -1;
}

std::string ProviderError(const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error")) {
    const Json& e = j["error"];
    if (e.is_object()) return e.value("message", e.dump());
    if (e.is_string()) return e.get<std::string>();
  }
  return body.substr(0, 300);
}

}  // namespace

Result<ModelReply> CallModel(const ModelRequest& req, const CallHooks& hooks) {
  GlobalInit();
  bool anthropic = req.provider == "anthropic";
  if (!anthropic && req.provider != "openai") {
    return InvalidArgumentError("unknown provider \"" + req.provider + "\"");
  }
  std::string base = req.base_url;
  if (base.empty()) base = anthropic ? "https://api.anthropic.com" : "https://api.openai.com/v1";
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string url = anthropic ? base + "/v1/messages" : base + "/chat/completions";
  if (anthropic && base.size() >= 3 && base.substr(base.size() - 3) == "/v1") {
    url = base + "/messages";
  }
  const std::string payload = (anthropic ? AnthropicBody(req) : OpenAiBody(req)).dump();

  auto start = std::chrono::steady_clock::now();
  auto elapsed_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
  };
  std::string last_error;
  int attempts = 0;
  for (int attempt = 0; attempt <= req.max_http_retries; ++attempt) {
    ++attempts;
    if (hooks.cancel != nullptr && hooks.cancel->load()) return CancelledError("cancelled");
    int64_t remaining = req.timeout_ms > 0 ? req.timeout_ms - elapsed_ms() : 0;
    if (req.timeout_ms > 0 && remaining <= 0) {
      return DeadlineExceededError("no reply within " + std::to_string(req.timeout_ms) + " ms");
    }
    CURL* curl = curl_easy_init();
    if (curl == nullptr) return InternalError("curl_easy_init failed");
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    if (anthropic) {
      headers = curl_slist_append(headers, "anthropic-version: 2023-06-01");
      if (!req.api_key.empty())
        headers = curl_slist_append(headers, ("x-api-key: " + req.api_key).c_str());
    } else if (!req.api_key.empty()) {
      headers = curl_slist_append(headers, ("Authorization: Bearer " + req.api_key).c_str());
    }
    for (const auto& [k, v] : req.headers)
      headers = curl_slist_append(headers, (k + ": " + v).c_str());
    Exchange x{.cancel = hooks.cancel};
    StreamAssembler assembler(req, hooks);
    struct Sink {
      Exchange* x;
      StreamAssembler* a;
      CURL* curl;
    } sink{&x, req.stream ? &assembler : nullptr, curl};
    auto write = +[](char* data, size_t size, size_t n, void* user) -> size_t {
      auto* s = static_cast<Sink*>(user);
      size_t len = size * n;
      if (s->x->status == 0) curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->x->status);
      if (s->a != nullptr && s->x->status >= 200 && s->x->status < 300) {
        s->a->Feed(std::string_view(data, len));
      } else {
        s->x->body.append(data, len);
      }
      return len;
    };
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    if (req.timeout_ms > 0)
      curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining));
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &x.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);

    if (rc == CURLE_ABORTED_BY_CALLBACK) return CancelledError("cancelled");
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      return DeadlineExceededError("no reply within " + std::to_string(req.timeout_ms) + " ms");
    }
    int64_t wait_ms = -1;
    if (rc != CURLE_OK) {
      last_error = std::string("connection failed: ") + curl_easy_strerror(rc);
    } else if (x.status == 429 || x.status >= 500) {
      last_error = "HTTP " + std::to_string(x.status) + ": " + ProviderError(x.body);
      wait_ms = RetryAfterMs(x.retry_after);
    } else if (x.status < 200 || x.status >= 300) {
      return InvalidArgumentError("HTTP " + std::to_string(x.status) + ": " +
                                  ProviderError(x.body));
    } else {
      Result<ModelReply> reply = [&]() -> Result<ModelReply> {
        if (req.stream) return assembler.Finish();
        Json j = Json::parse(x.body, nullptr, false);
        if (j.is_discarded()) return InvalidArgumentError("the reply is not JSON");
        return anthropic ? ParseAnthropic(req, j) : ParseOpenAi(req, j);
      }();
      if (reply.ok()) reply->http_attempts = attempts;
      return reply;
    }
    if (attempt == req.max_http_retries) break;
    if (wait_ms < 0) wait_ms = req.retry_base_ms << attempt;
    wait_ms = std::min<int64_t>(wait_ms, 60000);
    // Sleep in small steps so a cancel is noticed.
    for (int64_t slept = 0; slept < wait_ms; slept += 20) {
      if (hooks.cancel != nullptr && hooks.cancel->load()) return CancelledError("cancelled");
      if (req.timeout_ms > 0 && elapsed_ms() >= req.timeout_ms) {
        return DeadlineExceededError("no reply within " + std::to_string(req.timeout_ms) + " ms");
      }
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::min<int64_t>(20, wait_ms - slept)));
    }
  }
  return UnavailableError(last_error + " (after " + std::to_string(attempts) + " attempts)");
}

}  // namespace smithers::agents
