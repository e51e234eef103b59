// Language-model providers over HTTP: one request/reply shape for OpenAI-
// compatible Chat Completions and Anthropic Messages (docs/agents.md).
//
//   agents::ModelRequest req{.provider = "openai", .base_url = "http://127.0.0.1:8080/v1",
//                            .model = "gpt-4.1-mini", .api_key = key};
//   req.messages.push_back({.role = "user", .content = "Say hi"});
//   SMITHERS_ASSIGN_OR_RETURN(agents::ModelReply reply, agents::CallModel(req, {}));
#ifndef SMITHERS_AGENTS_MODEL_H_
#define SMITHERS_AGENTS_MODEL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "smithers/clock.h"
#include "smithers/json.h"
#include "smithers/status.h"

namespace smithers::agents {

struct ToolCall {
  std::string id;
  std::string name;
  Json arguments = Json::object();
};

struct Message {
  std::string role;  // user, assistant, tool
  std::string content;
  std::vector<ToolCall> tool_calls;  // assistant turns that call tools
  std::string tool_call_id;          // tool turns: which call this answers
  std::string name;                  // tool turns: the tool's name
  bool is_error = false;             // tool turns: the tool failed
};

struct ToolSpec {
  std::string name;
  std::string description;
  Json parameters = Json::object();  // JSON Schema of the arguments
};

struct ModelRequest {
  std::string provider = "openai";  // openai (any Chat Completions server) or anthropic
  std::string base_url;             // "" = the provider's public endpoint
  std::string model;
  std::string api_key;  // never logged; "" = no Authorization header
  std::map<std::string, std::string> headers;
  std::string system;  // instructions
  std::vector<Message> messages;
  std::vector<ToolSpec> tools;
  // Structured output: the JSON Schema the reply must match (null = free
  // text). OpenAI: response_format json_schema; Anthropic: a forced tool.
  Json output_schema;
  std::string output_name = "output";
  double temperature = -1;   // < 0 = provider default
  int max_tokens = 0;        // 0 = provider default (Anthropic requires one: 4096)
  bool stream = false;       // consume SSE incrementally
  int64_t timeout_ms = 0;    // whole request; 0 = none
  int max_http_retries = 3;  // 429, 5xx and connection failures, with backoff
  int64_t retry_base_ms = 500;
};

struct ModelReply {
  std::string text;  // assistant text (for structured output: the JSON text)
  std::vector<ToolCall> tool_calls;
  Json structured;  // parsed structured output, when the provider returned one
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  std::string stop_reason;
  int http_attempts = 1;
};

struct CallHooks {
  const std::atomic<bool>* cancel = nullptr;  // set -> the call ends Cancelled
  // Retry waits and the call's deadline; nullptr = SystemClock(). (The HTTP
  // transfer itself runs in real time.)
  Clock* clock = nullptr;
  std::function<void(std::string_view)> on_text_delta;  // streamed text as it arrives
};

// One model turn, with HTTP retries. Errors: Unavailable (retries exhausted:
// 429/5xx/connection), DeadlineExceeded (timeout), Cancelled, InvalidArgument
// (4xx other than 429, malformed reply), each message free of the API key.
Result<ModelReply> CallModel(const ModelRequest& request, const CallHooks& hooks);

}  // namespace smithers::agents

#endif  // SMITHERS_AGENTS_MODEL_H_
