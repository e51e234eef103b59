#include "agents/agent_executor.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "agents/model.h"
#include "agents/tools.h"
#include "base/json_limits.h"
#include "base/redact.h"
#include "base/secrets.h"
#include "base/subprocess.h"
#include "sandbox/sandbox.h"
#include "smithers/schema.h"

namespace smithers::agents {

std::optional<Json> ParseJsonReply(const std::string& text) {
  auto parse = [](std::string_view s) -> std::optional<Json> {
    // A reply nesting deeper than a value may is no value (base/json_limits.h).
    if (!base::CheckJsonDepth(s, base::MaxJsonDepth()).ok()) return std::nullopt;
    Json j = Json::parse(s.begin(), s.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return std::nullopt;
    return j;
  };
  size_t b = text.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return std::nullopt;
  if (auto whole = parse(std::string_view(text).substr(b))) return whole;
  size_t fence = text.find("```");
  while (fence != std::string::npos) {
    size_t body = text.find('\n', fence);
    if (body == std::string::npos) break;
    size_t end = text.find("```", body);
    if (end == std::string::npos) break;
    if (auto j = parse(std::string_view(text).substr(body + 1, end - body - 1))) return j;
    fence = text.find("```", end + 3);
  }
  return std::nullopt;
}

namespace {

Json Error(const std::string& code, const std::string& message) {
  return {{"code", code}, {"message", base::Redact(message)}};
}

std::string Env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  return v != nullptr ? v : "";
}

// The agent's explicit choice to run its tools without the sandbox; only a
// boolean true counts.
bool Unisolated(const Json& a) {
  auto it = a.find("unisolatedTools");
  return it != a.end() && it->is_boolean() && it->get<bool>();
}

bool IsCliKind(const std::string& kind) {
  return kind == "claude-code" || kind == "codex" || kind == "gemini";
}

// What one agent of the chain did.
struct AgentRun {
  bool ok = false;
  bool cancelled = false;
  Json output;
  Json error;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  Json tool_calls = Json::array();
  // A CLI agent's sandbox with an egress allow-list: every connection its
  // process asked the proxy for (EgressProxy::Attempts), over all its calls.
  Json egress_attempts;
};

std::string SchemaInstructions(const Json& schema) {
  return "\n\nReply with only a JSON value (no prose) that matches this JSON Schema:\n" +
         schema.dump(2);
}

std::string Violations(const std::vector<schema::Violation>& v) {
  std::string s;
  for (const auto& x : v) s += "\n- " + x.path + ": " + x.message;
  return s;
}

// ---- coding-agent CLIs ----

// Where `exe` is: itself when it names a path, else the first executable of
// that name on the engine's PATH; "" when there is none.
std::string FindOnPath(const std::string& exe) {
  if (exe.find('/') != std::string::npos) return access(exe.c_str(), X_OK) == 0 ? exe : "";
  std::string path = Env("PATH");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (!dir.empty() && access((dir + "/" + exe).c_str(), X_OK) == 0) return dir + "/" + exe;
    start = end + 1;
  }
  return "";
}

// The reply text and token counts of each CLI's JSON output.
struct CliReply {
  std::string text;
  int64_t input_tokens = 0, output_tokens = 0;
  std::string error;
};

CliReply ParseCliOutput(const std::string& kind, const std::string& out) {
  CliReply r;
  if (kind == "codex") {
    // JSON lines: the last agent message is the reply; turn.completed has usage.
    size_t start = 0;
    while (start < out.size()) {
      size_t end = out.find('\n', start);
      if (end == std::string::npos) end = out.size();
      std::string_view line(out.data() + start, end - start);
      Json ev = base::CheckJsonDepth(line, base::MaxJsonDepth()).ok()
                    ? Json::parse(line.begin(), line.end(), nullptr, false)
                    : Json();
      start = end + 1;
      if (!ev.is_object()) continue;
      std::string type = ev.value("type", "");
      if (type == "item.completed" && ev.contains("item") && ev["item"].is_object() &&
          ev["item"].value("type", "") == "agent_message") {
        r.text = ev["item"].value("text", "");
      } else if (type == "turn.completed" && ev.contains("usage")) {
        r.input_tokens += ev["usage"].value("input_tokens", int64_t{0});
        r.output_tokens += ev["usage"].value("output_tokens", int64_t{0});
      } else if (type == "error" || type == "turn.failed") {
        r.error = ev.dump();
      }
    }
    if (r.text.empty() && r.error.empty()) r.error = "no agent_message in codex's output";
    return r;
  }
  Json j = base::CheckJsonDepth(out, base::MaxJsonDepth()).ok() ? Json::parse(out, nullptr, false)
                                                                : Json();
  if (!j.is_object()) {
    r.error = "output is not a JSON object";
    return r;
  }
  if (kind == "claude-code") {
    if (j.value("is_error", false)) r.error = j.value("result", "claude reported an error");
    r.text = j.value("result", "");
    if (j.contains("usage") && j["usage"].is_object()) {
      r.input_tokens = j["usage"].value("input_tokens", int64_t{0});
      r.output_tokens = j["usage"].value("output_tokens", int64_t{0});
    }
  } else {  // gemini
    if (j.contains("error") && !j["error"].is_null()) r.error = j["error"].dump();
    r.text = j.value("response", "");
    if (j.contains("stats") && j["stats"].contains("models")) {
      for (const auto& [name, m] : j["stats"]["models"].items()) {
        if (!m.contains("tokens")) continue;
        r.input_tokens += m["tokens"].value("prompt", int64_t{0});
        r.output_tokens += m["tokens"].value("candidates", int64_t{0});
      }
    }
  }
  return r;
}

std::vector<std::string> CliArgv(const std::string& kind, const Json& a, const std::string& exe,
                                 const std::string& prompt) {
  std::string model = a.value("model", "");
  std::vector<std::string> argv = {exe};
  std::vector<std::string> tools;
  if (a.contains("tools") && a["tools"].is_array()) {
    for (const auto& t : a["tools"]) {
      if (t.is_string()) tools.push_back(t.get<std::string>());
    }
  }
  if (kind == "claude-code") {
    argv.insert(argv.end(), {"-p", prompt, "--output-format", "json"});
    if (!model.empty()) argv.insert(argv.end(), {"--model", model});
    if (!tools.empty()) {
      std::string list;
      for (const auto& t : tools) list += (list.empty() ? "" : ",") + t;
      argv.insert(argv.end(), {"--allowedTools", list});
    }
  } else if (kind == "codex") {
    argv.insert(argv.end(), {"exec", "--json", "--skip-git-repo-check"});
    if (!model.empty()) argv.insert(argv.end(), {"--model", model});
    argv.push_back(prompt);
  } else {  // gemini
    argv.insert(argv.end(), {"-p", prompt, "--output-format", "json"});
    if (!model.empty()) argv.insert(argv.end(), {"-m", model});
  }
  return argv;
}

// ---- one attempt ----

class AgentExecution final : public Execution {
 public:
  AgentExecution(Json chain, std::string prompt, Json schema, std::string root_dir,
                 std::vector<std::string> hidden_paths, bool require_sandbox, Clock& clock,
                 int64_t deadline_ms)
      : require_sandbox_(require_sandbox),
        clock_(clock),
        chain_(std::move(chain)),
        prompt_(std::move(prompt)),
        schema_(std::move(schema)),
        root_dir_(std::move(root_dir)),
        hidden_paths_(std::move(hidden_paths)),
        deadline_ms_(deadline_ms) {
    if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) wake_[0] = wake_[1] = -1;
    thread_ = std::thread([this] { Main(); });
  }

  ~AgentExecution() override {
    cancel_ = true;
    if (thread_.joinable()) thread_.join();
    for (int fd : wake_) {
      if (fd >= 0) close(fd);
    }
  }

  std::optional<AttemptOutcome> Poll() override {
    std::lock_guard<std::mutex> lock(mu_);
    return outcome_;
  }
  int WaitFd() const override { return wake_[0]; }
  void Cancel(const std::string&) override { cancel_ = true; }
  std::string TakeOutput() override {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(streamed_, std::string());
  }
  bool TakeActivity() override { return activity_.exchange(false); }

 private:
  void Main() {
    AttemptOutcome o = RunChain();
    {
      std::lock_guard<std::mutex> lock(mu_);
      outcome_ = std::move(o);
    }
    if (wake_[1] >= 0) {
      char c = 1;
      (void)!write(wake_[1], &c, 1);
    }
  }

  AttemptOutcome RunChain() {
    Json agents = chain_.is_array() ? chain_ : Json::array({chain_});
    Json meta = {{"agents", Json::array()}};
    Json last_error = Error("AGENT_CONFIG_INVALID", "no agent configured for this task");
    int64_t in = 0, out = 0;
    for (const Json& a : agents) {
      AgentRun r =
          a.is_object()
              ? RunOne(a)
              : AgentRun{.error = Error("AGENT_CONFIG_INVALID", "an agent must be a table")};
      in += r.input_tokens;
      out += r.output_tokens;
      Json entry = {{"kind", a.value("kind", "")},
                    {"model", a.value("model", "")},
                    {"ok", r.ok},
                    {"inputTokens", r.input_tokens},
                    {"outputTokens", r.output_tokens},
                    {"toolCalls", r.tool_calls}};
      if (!r.ok) entry["error"] = r.error;
      if (a.is_object() && Unisolated(a)) entry["unisolatedTools"] = true;
      if (a.is_object() && a.contains("sandbox")) entry["sandbox"] = a["sandbox"];
      if (!r.egress_attempts.is_null()) entry["egressAttempts"] = r.egress_attempts;
      // An optional price table, in USD per million tokens.
      if (a.is_object() && a.contains("price") && a["price"].is_object()) {
        double cost = static_cast<double>(r.input_tokens) * a["price"].value("input", 0.0) / 1e6 +
                      static_cast<double>(r.output_tokens) * a["price"].value("output", 0.0) / 1e6;
        entry["costUsd"] = cost;
        meta["costUsd"] = meta.value("costUsd", 0.0) + cost;
      }
      meta["agents"].push_back(entry);
      meta["tokens"] = {{"input", in}, {"output", out}};
      if (r.ok) return {.ok = true, .output = r.output, .meta = meta};
      if (r.cancelled) {
        return {.ok = false, .error = r.error, .retryable = false, .meta = meta};
      }
      last_error = r.error;  // the next agent in the chain takes over
    }
    std::string last_code = last_error.value("code", "");
    bool retryable = last_code != "AGENT_CONFIG_INVALID" && last_code != "SANDBOX_REQUIRED" &&
                     last_code != "SANDBOX_UNAVAILABLE";
    return {.ok = false, .error = last_error, .retryable = retryable, .meta = meta};
  }

  int64_t Remaining() const {
    return deadline_ms_ > 0 ? std::max<int64_t>(1, deadline_ms_ - clock_.MonotonicMs()) : 0;
  }

  // Checks a candidate reply; "" when it is the output, else what is wrong.
  std::string Check(const std::optional<Json>& value, Json* output) {
    if (!value) return "the reply is not JSON (nor has a ```json block)";
    if (!schema_.is_null()) {
      auto v = schema::Validate(schema_, *value);
      if (!v.empty()) return "the reply does not match the schema:" + Violations(v);
    }
    *output = *value;
    return "";
  }

  AgentRun RunOne(const Json& a) {
    std::string kind = a.value("kind", "");
    const bool cli = IsCliKind(kind);
    if (std::string why = UnconfinedReason(a); require_sandbox_ && !why.empty()) {
      return {.error = Error("SANDBOX_REQUIRED",
                             "this engine runs processes only in a sandbox (--require-sandbox) "
                             "and " +
                                 why + "; not run")};
    }
    if (kind == "openai" || kind == "anthropic") return RunHttp(kind, a);
    if (cli) return RunCli(kind, a);
    return {.error = Error("AGENT_CONFIG_INVALID", "unknown agent kind \"" + kind + "\"")};
  }

  AgentRun RunHttp(const std::string& kind, const Json& a) {
    AgentRun run;
    // The key comes from the secret store (base/secrets.h), never from the
    // environment: the provider's own variable as it is, another one named by
    // apiKeyEnv as a reference "env:NAME" (the Gateway's allow-list applies).
    const std::string default_env = kind == "openai" ? "OPENAI_API_KEY" : "ANTHROPIC_API_KEY";
    std::string key_env = a.value("apiKeyEnv", default_env);
    std::string key;
    if (key_env == default_env) {
      key = base::ProcessSecrets().Get(key_env).value_or("");
    } else {
      Result<std::string> resolved = base::ProcessSecrets().Resolve("env:" + key_env);
      if (resolved.ok()) {
        key = std::move(resolved).value();
      } else if (resolved.status().code() == StatusCode::kInvalidArgument) {
        run.error = Error("SECRET_NOT_ALLOWED", "apiKeyEnv: " + resolved.status().message());
        return run;
      }
    }
    std::string base_url = a.value("baseUrl", "");
    if (key.empty() && base_url.empty()) {
      run.error = Error("AGENT_CONFIG_INVALID", key_env + " is not set (and no baseUrl is given)");
      return run;
    }
    ModelRequest req{.provider = kind,
                     .base_url = base_url,
                     .model = a.value("model", ""),
                     .api_key = key,
                     .system = a.value("instructions", "")};
    if (a.contains("headers") && a["headers"].is_object()) {
      for (const auto& [k, v] : a["headers"].items()) {
        if (v.is_string()) req.headers[k] = v.get<std::string>();
      }
    }
    if (a.contains("temperature") && a["temperature"].is_number()) {
      req.temperature = a["temperature"].get<double>();
    }
    req.max_tokens = a.value("maxTokens", 0);
    req.stream = a.value("stream", false);
    std::vector<std::string> tool_names;
    if (a.contains("tools") && a["tools"].is_array()) {
      for (const auto& t : a["tools"]) {
        if (t.is_string()) tool_names.push_back(t.get<std::string>());
      }
    }
    auto specs = BuiltinToolSpecs(tool_names);
    if (!specs.ok()) {
      run.error = Error("AGENT_CONFIG_INVALID", specs.status().message());
      return run;
    }
    req.tools = std::move(specs).value();
    std::string prompt = prompt_;
    // Native structured output, except Anthropic with tools (its forced
    // output tool would keep the model from calling the others).
    bool native = !schema_.is_null() && (kind == "openai" || req.tools.empty());
    if (native) {
      req.output_schema = schema_;
    } else if (!schema_.is_null()) {
      prompt += SchemaInstructions(schema_);
    }
    req.messages.push_back({.role = "user", .content = prompt});
    ToolContext tools{.root_dir = a.value("rootDir", root_dir_),
                      .allow_network = a.value("allowNetwork", false),
                      .unisolated = Unisolated(a),
                      .hidden_paths = hidden_paths_,
                      .clock = &clock_};
    char resolved[4096];
    if (realpath(tools.root_dir.c_str(), resolved) != nullptr) tools.root_dir = resolved;
    int max_turns = a.value("maxTurns", 20);
    int schema_retries = a.value("maxSchemaRetries", 2);
    CallHooks hooks{
        .cancel = &cancel_, .clock = &clock_, .on_text_delta = [this](std::string_view piece) {
          activity_ = true;
          std::lock_guard<std::mutex> lock(mu_);
          if (streamed_.size() < (1u << 20)) streamed_.append(piece);
        }};
    for (int turn = 1;; ++turn) {
      if (turn > max_turns) {
        run.error = Error("AGENT_MAX_TURNS",
                          "no final answer within maxTurns = " + std::to_string(max_turns));
        return run;
      }
      req.timeout_ms = a.value("timeoutMs", int64_t{0});
      if (Remaining() > 0 && (req.timeout_ms == 0 || Remaining() < req.timeout_ms)) {
        req.timeout_ms = Remaining();
      }
      Result<ModelReply> reply = CallModel(req, hooks);
      activity_ = true;  // a reply (or an error) is a sign of life
      if (!reply.ok()) {
        run.cancelled = reply.status().code() == StatusCode::kCancelled;
        std::string code = run.cancelled ? "TASK_CANCELLED"
                           : reply.status().code() == StatusCode::kDeadlineExceeded
                               ? "TASK_TIMEOUT"
                               : "AGENT_REQUEST_FAILED";
        run.error = Error(code, kind + " request failed: " + reply.status().message());
        return run;
      }
      run.input_tokens += reply->input_tokens;
      run.output_tokens += reply->output_tokens;
      if (!reply->tool_calls.empty()) {
        req.messages.push_back(
            {.role = "assistant", .content = reply->text, .tool_calls = reply->tool_calls});
        for (const ToolCall& call : reply->tool_calls) {
          int64_t t0 = clock_.MonotonicMs();
          ToolResult res = RunTool(tools, call.name, call.arguments);
          activity_ = true;
          run.tool_calls.push_back({{"name", call.name},
                                    {"arguments", base::RedactJson(call.arguments)},
                                    {"ok", res.ok},
                                    {"resultBytes", res.output.size()},
                                    {"durationMs", clock_.MonotonicMs() - t0}});
          // A refused sandbox is the operator's business too, not only the model's.
          if (res.not_run) {
            run.tool_calls.back()["error"] = base::Redact(res.output.substr(0, 1000));
          }
          req.messages.push_back({.role = "tool",
                                  .content = res.output,
                                  .tool_call_id = call.id,
                                  .name = call.name,
                                  .is_error = !res.ok});
        }
        continue;
      }
      std::optional<Json> value =
          reply->structured.is_null() ? ParseJsonReply(reply->text) : reply->structured;
      if (schema_.is_null() && !value) value = Json(reply->text);
      std::string problem = Check(value, &run.output);
      if (problem.empty()) {
        run.ok = true;
        return run;
      }
      if (schema_retries-- <= 0) {
        run.error = Error("INVALID_OUTPUT", problem);
        return run;
      }
      // Feed the violations back and ask again.
      req.messages.push_back({.role = "assistant", .content = reply->text});
      req.messages.push_back({.role = "user",
                              .content = problem + "\nReply again with only the corrected JSON." +
                                         (native ? std::string() : SchemaInstructions(schema_))});
    }
  }

  // A CLI agent's environment (base::BuildChildEnvironment): the allow-list,
  // the CLI's own provider key from the secret store, then the agent's `env`
  // (a string, or {secret = "env:NAME" | "file:PATH"} resolved now).
  static Result<std::vector<std::string>> CliEnvironment(const std::string& kind, const Json& a) {
    std::map<std::string, std::string> values, refs;
    std::vector<const char*> keys;
    if (kind == "claude-code") keys = {"ANTHROPIC_API_KEY"};
    if (kind == "codex") keys = {"OPENAI_API_KEY", "CODEX_API_KEY"};
    if (kind == "gemini") keys = {"GEMINI_API_KEY", "GOOGLE_API_KEY"};
    for (const char* k : keys) {
      if (std::optional<std::string> v = base::ProcessSecrets().Get(k)) values[k] = *v;
    }
    if (auto env = a.find("env"); env != a.end()) {
      SMITHERS_RETURN_IF_ERROR(base::SplitDeclaredEnv(*env, &values, &refs));
    }
    return base::BuildChildEnvironment(values, refs);
  }

  AgentRun RunCli(const std::string& kind, const Json& a) {
    AgentRun run;
    std::string default_exe =
        kind == "claude-code" ? "claude" : (kind == "codex" ? "codex" : "gemini");
    std::string exe = a.value("executable", default_exe);
    std::string found = FindOnPath(exe);
    if (found.empty()) {
      run.error = Error("AGENT_CONFIG_INVALID",
                        kind + " agent: executable \"" + exe +
                            "\" was not found (install it or set executable = \"/path/to/" +
                            default_exe + "\")");
      return run;
    }
    int schema_retries = a.value("maxSchemaRetries", 2);
    std::string prompt = prompt_;
    if (!schema_.is_null()) prompt += SchemaInstructions(schema_);
    std::string cwd = a.value("rootDir", root_dir_);
    Result<std::vector<std::string>> env = CliEnvironment(kind, a);
    if (!env.ok()) {
      run.error = Error(env.status().code() == StatusCode::kInvalidArgument ? "SECRET_NOT_ALLOWED"
                                                                            : "SECRET_UNAVAILABLE",
                        kind + " agent: " + env.status().message());
      return run;
    }
    while (true) {
      int64_t deadline = deadline_ms_;
      int64_t own = a.value("timeoutMs", int64_t{0});
      if (own > 0 && (deadline == 0 || clock_.MonotonicMs() + own < deadline))
        deadline = clock_.MonotonicMs() + own;
      base::ProcessSpec spec;
      spec.argv = CliArgv(kind, a, exe, prompt);
      // Its sandbox (docs/sandbox.md), made for each call: the executable
      // by the path found here, rootDir the workspace.
      ConfinedProcess confined;
      if (auto sb = a.find("sandbox"); sb != a.end()) {
        // The host's executable, by its path; an image has its own.
        if (!sandbox::RunsImages(sb->value("runtime", ""))) spec.argv[0] = found;
        Result<ConfinedProcess> c = Confine(kind, SandboxFromJson(*sb), cwd, spec.argv, *env);
        if (!c.ok()) {
          run.error = Error("SANDBOX_UNAVAILABLE", c.status().message());
          return run;
        }
        confined = std::move(c).value();
        spec.argv = confined.argv;
        spec.join_files = confined.join_files;
      }
      spec.env = *env;
      spec.cwd = cwd;
      spec.deadline_ms = deadline;  // on clock_, as RunProcess reads it
      spec.kill_grace_ms = 2000;
      // Past 16 MiB a stream is cut; the reply then fails to parse.
      spec.max_stdout_bytes = spec.max_stderr_bytes = 16u << 20;
      Result<base::ProcessResult> proc = base::RunProcess(spec, &cancel_, &activity_, clock_);
      if (confined.report) {
        Json seen = confined.report();
        if (seen.is_array()) {
          if (!run.egress_attempts.is_array()) run.egress_attempts = Json::array();
          for (Json& e : seen) run.egress_attempts.push_back(std::move(e));
        }
      }
      if (!proc.ok()) {
        run.error = Error("AGENT_REQUEST_FAILED", proc.status().message());
        return run;
      }
      if (proc->cancelled) {
        run.cancelled = true;
        run.error = Error("TASK_CANCELLED", kind + " agent cancelled");
        return run;
      }
      if (proc->timed_out) {
        run.error = Error("TASK_TIMEOUT", kind + " agent timed out");
        return run;
      }
      CliReply reply = ParseCliOutput(kind, proc->out);
      run.input_tokens += reply.input_tokens;
      run.output_tokens += reply.output_tokens;
      if (proc->exit_code != 0 && confined.limit_reached) {
        if (std::string why = confined.limit_reached(); !why.empty()) {
          run.error = Error("SANDBOX_LIMIT_EXCEEDED", kind + " agent: " + why + " (exit code " +
                                                          std::to_string(proc->exit_code) + ")");
          return run;
        }
      }
      if (proc->exit_code != 0 || !reply.error.empty()) {
        std::string err = proc->err.substr(0, 2000);
        run.error =
            Error("AGENT_REQUEST_FAILED", kind + " exited " + std::to_string(proc->exit_code) +
                                              (reply.error.empty() ? "" : ": " + reply.error) +
                                              (err.empty() ? "" : "; stderr: " + err));
        return run;
      }
      std::optional<Json> value = ParseJsonReply(reply.text);
      if (schema_.is_null() && !value) value = Json(reply.text);
      std::string problem = Check(value, &run.output);
      if (problem.empty()) {
        run.ok = true;
        return run;
      }
      if (schema_retries-- <= 0) {
        run.error = Error("INVALID_OUTPUT", problem);
        return run;
      }
      prompt = prompt_ + "\n\nYour previous reply was:\n" + reply.text + "\n\n" + problem +
               SchemaInstructions(schema_);
    }
  }

  // A CLI agent's process in its sandbox, rootDir (made absolute) the
  // workspace, the database hidden.
  // A container runtime gets the variables of `env` ("NAME=value") that
  // are the CLI's own (its key, its agent's env), by name.
  Result<ConfinedProcess> Confine(const std::string& kind, const SandboxSpec& spec,
                                  const std::string& root_dir, const std::vector<std::string>& argv,
                                  const std::vector<std::string>& env) const {
    std::vector<std::string> names;
    for (const std::string& e : env) {
      std::string name = e.substr(0, e.find('='));
      if (!base::InheritedByChildren(name)) names.push_back(name);
    }
    std::error_code ec;
    std::filesystem::path workspace = std::filesystem::absolute(root_dir, ec);
    Result<ConfinedProcess> c =
        ec ? Result<ConfinedProcess>(FailedPreconditionError("rootDir: " + ec.message()))
           : sandbox::ConfineTask(spec, workspace.lexically_normal().string(), hidden_paths_, argv,
                                  names);
    if (!c.ok()) {
      return FailedPreconditionError(kind + " agent: " + c.status().message() +
                                     "; the agent was not run");
    }
    return c;
  }

  bool require_sandbox_;
  Clock& clock_;  // the run's: deadlines, retry waits and tool timings
  Json chain_;
  std::string prompt_;
  Json schema_;
  std::string root_dir_;
  std::vector<std::string> hidden_paths_;
  int64_t deadline_ms_;  // on clock_'s MonotonicMs; 0 = none
  std::atomic<bool> cancel_{false};
  std::atomic<bool> activity_{false};  // a heartbeat since TakeActivity
  int wake_[2] = {-1, -1};
  std::mutex mu_;
  std::optional<AttemptOutcome> outcome_;  // guarded by mu_
  std::string streamed_;                   // guarded by mu_: text not yet taken
  std::thread thread_;                     // last: starts after every member exists
};

class AgentExecutor final : public Executor {
 public:
  explicit AgentExecutor(AgentExecutorOptions options) : options_(std::move(options)) {}

  Result<std::unique_ptr<Execution>> Start(const TaskSpec& task, const AttemptInfo& info) override {
    auto it = options_.outputs.find(task.output);
    Json schema = it != options_.outputs.end() ? it->second : Json();
    // The deadline is on the run's clock, which the attempt reads and waits on.
    Clock& clock = info.clock != nullptr ? *info.clock : SystemClock();
    // The rows of its dependencies follow the prompt as JSON (docs/engine.md
    // "Dependencies"): the agent's counterpart of a compute function's table.
    std::string prompt = task.prompt;
    if (info.deps != nullptr && !info.deps->empty()) {
      prompt += "\n\nThe outputs of the tasks this task depends on (deps), as JSON by key:\n" +
                info.deps->dump(-1, ' ', false, Json::error_handler_t::replace);
    }
    return std::unique_ptr<Execution>(std::make_unique<AgentExecution>(
        task.agent, std::move(prompt), std::move(schema), options_.default_root_dir,
        options_.hidden_paths, options_.require_sandbox, clock, info.deadline_monotonic_ms));
  }

 private:
  AgentExecutorOptions options_;
};

}  // namespace

std::unique_ptr<Executor> NewAgentExecutor(AgentExecutorOptions options) {
  return std::make_unique<AgentExecutor>(std::move(options));
}

std::string UnconfinedReason(const Json& agent) {
  if (!agent.is_object()) return "";
  const std::string kind = agent.value("kind", "");
  if (IsCliKind(kind) && !agent.contains("sandbox")) {
    return "the " + kind + " agent's process is not confined (give the agent a sandbox)";
  }
  if (Unisolated(agent)) return "the agent sets unisolatedTools";
  return "";
}

}  // namespace smithers::agents
