#include "gateway/config.h"

#include <strings.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "base/json_limits.h"
#include "base/redact.h"
#include "base/secrets.h"
#include "smithers/store.h"

namespace smithers::gateway {
namespace {

std::string TypeName(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

// A duration in the largest unit that holds it exactly: "1h", "90m", "365d".
std::string DurationText(int64_t ms) {
  static constexpr std::pair<const char*, int64_t> kUnits[] = {
      {"d", 24LL * 60 * 60 * 1000}, {"h", 60LL * 60 * 1000}, {"m", 60LL * 1000}, {"s", 1000}};
  for (const auto& [unit, size] : kUnits) {
    if (ms != 0 && ms % size == 0) return std::to_string(ms / size) + unit;
  }
  return std::to_string(ms) + "ms";
}

std::string Where(const std::string& file, const toml::source_region& at) {
  if (!at.begin) return file;
  return file + ":" + std::to_string(at.begin.line) + ":" + std::to_string(at.begin.column);
}

// One table of the file. Each getter leaves its output alone when the key is
// absent and marks the key as known; Finish() refuses the keys no getter
// asked for.
class Section {
 public:
  Section(const toml::table& table, std::string prefix, const std::string& file, std::string dir)
      : table_(table), prefix_(std::move(prefix)), file_(file), dir_(std::move(dir)) {}

  Status String(std::string_view key, std::string* out) {
    const toml::node* n = Take(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_string()) return Wrong(key, *n, "a string");
    *out = n->as_string()->get();
    return Status::Ok();
  }

  // One of `allowed`, in any case; set in the spelling of `allowed`.
  Status OneOf(std::string_view key, const std::vector<std::string>& allowed, std::string* out) {
    std::string value = *out;
    SMITHERS_RETURN_IF_ERROR(String(key, &value));
    for (const std::string& a : allowed) {
      if (strcasecmp(a.c_str(), value.c_str()) == 0) {
        *out = a;
        return Status::Ok();
      }
    }
    std::string list;
    for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
    return Error(key, *table_.get(key), "must be one of " + list + ", not \"" + value + "\"");
  }

  // A file or folder: relative to the configuration file's folder.
  Status Path(std::string_view key, std::string* out) {
    std::string value;
    const toml::node* n = table_.get(key);
    SMITHERS_RETURN_IF_ERROR(String(key, &value));
    if (n == nullptr) return Status::Ok();
    if (value.empty()) return Error(key, *n, "must not be empty");
    *out = value[0] == '/' ? value : dir_ + value;
    return Status::Ok();
  }

  // A store URL (ParseStoreUrl): bad input unless OpenStore accepts its
  // form; a relative file path in it is relative to the file's folder.
  Status StoreUrl(std::string_view key, std::string* out) {
    std::string value;
    const toml::node* n = table_.get(key);
    SMITHERS_RETURN_IF_ERROR(String(key, &value));
    if (n == nullptr) return Status::Ok();
    Result<StoreLocation> location = ParseStoreUrl(value);
    if (!location.ok()) return Error(key, *n, location.status().message());
    const std::string& path = location->path;
    if (!path.empty() && path[0] != '/' && value.ends_with(path)) {
      value = value.substr(0, value.size() - path.size()) + dir_ + path;
    }
    *out = value;
    return Status::Ok();
  }

  // An integer in [min, max] (max: what T holds).
  template <typename T>
  Status Int(std::string_view key, int64_t min, T* out,
             int64_t max = static_cast<int64_t>(std::min<uint64_t>(
                 std::numeric_limits<T>::max(), std::numeric_limits<int64_t>::max()))) {
    const toml::node* n = Take(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_integer()) return Wrong(key, *n, "an integer");
    int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      return Error(key, *n,
                   "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                       ", not " + std::to_string(v));
    }
    *out = static_cast<T>(v);
    return Status::Ok();
  }

  // A duration ("30d", "1h", "90m": base::ParseDurationMs) in [min_ms, max_ms].
  Status Duration(std::string_view key, int64_t min_ms, int64_t max_ms, int64_t* out) {
    std::string value;
    SMITHERS_RETURN_IF_ERROR(String(key, &value));
    const toml::node* n = table_.get(key);
    if (n == nullptr) return Status::Ok();
    long long ms = 0;
    if (!base::ParseDurationMs(value, &ms)) {
      return Error(key, *n, "\"" + value + "\" is not a duration like 30d, 12h or 90m");
    }
    if (ms < min_ms) {
      return Error(key, *n, "must be at least " + DurationText(min_ms) + ", not \"" + value + "\"");
    }
    if (ms > max_ms) {
      return Error(key, *n, "must be at most " + DurationText(max_ms) + ", not \"" + value + "\"");
    }
    *out = ms;
    return Status::Ok();
  }

  Status Bool(std::string_view key, bool* out) {
    const toml::node* n = Take(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_boolean()) return Wrong(key, *n, "true or false");
    *out = n->as_boolean()->get();
    return Status::Ok();
  }

  Status Strings(std::string_view key, std::vector<std::string>* out) {
    const toml::node* n = Take(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_array()) return Wrong(key, *n, "an array of strings");
    std::vector<std::string> all;
    for (const toml::node& item : *n->as_array()) {
      if (!item.is_string()) return Wrong(key, item, "an array of strings");
      all.push_back(item.as_string()->get());
    }
    *out = std::move(all);
    return Status::Ok();
  }

  // A sub-table, or nullptr when absent.
  Result<const toml::table*> Table(std::string_view key) {
    const toml::node* n = Take(key);
    if (n == nullptr) return static_cast<const toml::table*>(nullptr);
    if (!n->is_table()) return Wrong(key, *n, "a table");
    return n->as_table();
  }

  // A key that must not be there.
  Status Refuse(std::string_view key, const std::string& why) {
    const toml::node* n = Take(key);
    return n == nullptr ? Status::Ok() : Error(key, *n, why);
  }

  // The first key (in the file's order) no getter asked for.
  Status Finish() const {
    const toml::key* first = nullptr;
    for (const auto& [k, v] : table_) {
      if (known_.count(std::string(k.str())) != 0) continue;
      if (first == nullptr || k.source().begin.line < first->source().begin.line ||
          (k.source().begin.line == first->source().begin.line &&
           k.source().begin.column < first->source().begin.column)) {
        first = &k;
      }
    }
    if (first == nullptr) return Status::Ok();
    std::string known;
    for (const std::string& k : known_) known += (known.empty() ? "" : ", ") + k;
    return InvalidArgumentError(Where(file_, first->source()) + ": " + Dotted(first->str()) +
                                ": unknown key" +
                                (known.empty() ? "" : " (known here: " + known + ")"));
  }

  std::string Dotted(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

 private:
  const toml::node* Take(std::string_view key) {
    known_.insert(std::string(key));
    return table_.get(key);
  }
  Status Error(std::string_view key, const toml::node& n, const std::string& why) const {
    return InvalidArgumentError(Where(file_, n.source()) + ": " + Dotted(key) + ": " + why);
  }
  Status Wrong(std::string_view key, const toml::node& n, const std::string& want) const {
    return Error(key, n, "must be " + want + ", not " + TypeName(n.type()));
  }

  const toml::table& table_;
  std::string prefix_;
  const std::string& file_;
  std::string dir_;
  std::set<std::string> known_;
};

constexpr int64_t kMaxPort = 65535;

}  // namespace

Result<GatewayConfig> ParseGatewayConfig(std::string_view text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return InvalidArgumentError(Where(path, e.source()) + ": " + std::string(e.description()));
  }
  // Relative paths in the file are relative to its folder ("" = the cwd).
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  GatewayConfig out;
  GatewayOptions& o = out.options;

  Section top(root, "", path, dir);
  SMITHERS_RETURN_IF_ERROR(top.Path("workflows", &o.workflows_dir));
  SMITHERS_RETURN_IF_ERROR(top.String("host", &o.host));
  SMITHERS_RETURN_IF_ERROR(top.Int("port", 0, &o.port, kMaxPort));
  SMITHERS_RETURN_IF_ERROR(top.StoreUrl("db", &o.db));
  SMITHERS_RETURN_IF_ERROR(top.OneOf("synchronous", {"FULL", "NORMAL"}, &o.synchronous));
  SMITHERS_RETURN_IF_ERROR(top.String("audit_key", &o.audit_key));
  SMITHERS_RETURN_IF_ERROR(top.Bool("insecure", &o.insecure));
  SMITHERS_RETURN_IF_ERROR(top.Strings("allowed_origins", &o.allowed_origins));
  SMITHERS_RETURN_IF_ERROR(top.Int("heartbeat_ms", 1, &o.heartbeat_ms));
  SMITHERS_RETURN_IF_ERROR(top.Bool("trusted_modules", &o.trusted_modules));
  SMITHERS_RETURN_IF_ERROR(top.Bool("require_sandbox", &o.require_sandbox));
  SMITHERS_RETURN_IF_ERROR(top.Path("module_workspace", &o.module_workspace));
  SMITHERS_RETURN_IF_ERROR(top.Bool("group_readable", &o.group_readable));
  if (const toml::node* log = root.get("access_log");
      log != nullptr && log->is_string() &&
      (log->as_string()->get().empty() || log->as_string()->get() == "-")) {
    SMITHERS_RETURN_IF_ERROR(top.String("access_log", &o.access_log));  // stderr, or off
  } else {
    SMITHERS_RETURN_IF_ERROR(top.Path("access_log", &o.access_log));
  }

  SMITHERS_ASSIGN_OR_RETURN(const toml::table* tls_table, top.Table("tls"));
  if (tls_table != nullptr) {
    Section tls(*tls_table, "tls", path, dir);
    SMITHERS_RETURN_IF_ERROR(tls.Path("cert", &o.tls_cert));
    SMITHERS_RETURN_IF_ERROR(tls.Path("key", &o.tls_key));
    SMITHERS_RETURN_IF_ERROR(tls.Finish());
  }

  SMITHERS_ASSIGN_OR_RETURN(const toml::table* auth_table, top.Table("auth"));
  if (auth_table != nullptr) {
    Section auth(*auth_table, "auth", path, dir);
    SMITHERS_RETURN_IF_ERROR(
        auth.OneOf("mode", {"token", "jwt", "trusted-proxy", "none"}, &o.auth));
    SMITHERS_RETURN_IF_ERROR(auth.Path("tokens", &o.tokens_file));
    SMITHERS_RETURN_IF_ERROR(auth.Strings("proxy_default_scopes", &o.proxy_default_scopes));
    SMITHERS_RETURN_IF_ERROR(auth.Strings("trusted_proxies", &o.trusted_proxies));
    if (Status peers = CheckPeerList(o.trusted_proxies); !peers.ok()) {
      return InvalidArgumentError(Where(path, auth_table->get("trusted_proxies")->source()) +
                                  ": auth.trusted_proxies: " + peers.message());
    }
    std::string max_ttl;
    SMITHERS_RETURN_IF_ERROR(auth.String("max_token_ttl", &max_ttl));
    if (!max_ttl.empty()) {
      Result<int64_t> ms = ParseMaxTokenTtl(max_ttl);
      if (!ms.ok()) {
        return InvalidArgumentError(Where(path, auth_table->get("max_token_ttl")->source()) +
                                    ": auth.max_token_ttl: " + ms.status().message());
      }
      o.max_token_ttl_ms = *ms;
    }
    SMITHERS_ASSIGN_OR_RETURN(const toml::table* jwt_table, auth.Table("jwt"));
    if (jwt_table != nullptr) {
      Section jwt(*jwt_table, "auth.jwt", path, dir);
      SMITHERS_RETURN_IF_ERROR(jwt.String("issuer", &o.jwt.issuer));
      SMITHERS_RETURN_IF_ERROR(jwt.String("audience", &o.jwt.audience));
      SMITHERS_RETURN_IF_ERROR(jwt.String("secret_env", &out.jwt_secret_env));
      SMITHERS_RETURN_IF_ERROR(jwt.Path("secret_file", &out.jwt_secret_file));
      SMITHERS_RETURN_IF_ERROR(jwt.Int("clock_skew_ms", 0, &o.jwt.clock_skew_ms));
      SMITHERS_RETURN_IF_ERROR(jwt.Strings("default_scopes", &o.jwt.default_scopes));
      SMITHERS_RETURN_IF_ERROR(
          jwt.Refuse("secret",
                     "a secret is never read from the configuration file (it is shared, "
                     "copied and logged more than a secret should be); use secret_env = "
                     "\"VARIABLE\" or secret_file = \"PATH\""));
      if (!out.jwt_secret_env.empty() && !out.jwt_secret_file.empty()) {
        return InvalidArgumentError(Where(path, jwt_table->source()) +
                                    ": auth.jwt: secret_env and secret_file exclude each other");
      }
      SMITHERS_RETURN_IF_ERROR(jwt.Finish());
    }
    SMITHERS_RETURN_IF_ERROR(auth.Finish());
  }

  SMITHERS_ASSIGN_OR_RETURN(const toml::table* limits_table, top.Table("limits"));
  if (limits_table != nullptr) {
    Section limits(*limits_table, "limits", path, dir);
    SMITHERS_RETURN_IF_ERROR(limits.Int("max_body_bytes", 1, &o.max_body_bytes));
    SMITHERS_RETURN_IF_ERROR(limits.Int("max_frame_bytes", 1, &o.max_frame_bytes));
    SMITHERS_RETURN_IF_ERROR(limits.Int("max_connections", 1, &o.max_connections));
    SMITHERS_RETURN_IF_ERROR(limits.Int("max_preauth_connections", 1, &o.max_preauth_connections));
    SMITHERS_RETURN_IF_ERROR(limits.Int("max_queue_bytes", 1, &o.max_queue_bytes));
    SMITHERS_RETURN_IF_ERROR(limits.Int("max_queue_frames", 1, &o.max_queue_frames));
    SMITHERS_RETURN_IF_ERROR(limits.Int("slow_consumer_ms", 1, &o.slow_consumer_ms));
    SMITHERS_RETURN_IF_ERROR(limits.Int("connect_timeout_ms", 1, &o.connect_timeout_ms));
    SMITHERS_RETURN_IF_ERROR(
        limits.Int("max_json_depth", 1, &o.max_json_depth, base::kMaxJsonDepthCeiling));
    SMITHERS_RETURN_IF_ERROR(limits.Finish());
  }
  SMITHERS_ASSIGN_OR_RETURN(const toml::table* secrets_table, top.Table("secrets"));
  if (secrets_table != nullptr) {
    Section secrets(*secrets_table, "secrets", path, dir);
    SMITHERS_RETURN_IF_ERROR(secrets.Strings("allow", &o.secret_refs_allowed));
    for (const std::string& ref : o.secret_refs_allowed) {
      if (ref.rfind("env:", 0) != 0 && ref.rfind("file:/", 0) != 0) {
        return InvalidArgumentError(Where(path, secrets_table->get("allow")->source()) +
                                    ": secrets.allow: \"" + ref +
                                    "\" must start with \"env:\" or \"file:/\"");
      }
    }
    SMITHERS_RETURN_IF_ERROR(secrets.Finish());
  }
  SMITHERS_ASSIGN_OR_RETURN(const toml::table* retention_table, top.Table("retention"));
  if (retention_table != nullptr) {
    Section retention(*retention_table, "retention", path, dir);
    RetentionOptions& r = o.retention;
    SMITHERS_RETURN_IF_ERROR(retention.Duration("keep", kMinRetentionKeepMs,
                                                std::numeric_limits<int64_t>::max(), &r.keep_ms));
    SMITHERS_RETURN_IF_ERROR(
        retention.Duration("every", kMinRetentionEveryMs, kMaxRetentionEveryMs, &r.every_ms));
    std::vector<std::string> names;
    SMITHERS_RETURN_IF_ERROR(retention.Strings("statuses", &names));
    if (const toml::node* list = retention_table->get("statuses"); list != nullptr) {
      // Only runs that are over; each named once however often it is listed.
      r.statuses.clear();
      for (const toml::node& item : *list->as_array()) {
        const std::string& name = item.as_string()->get();
        std::optional<RunStatus> status = ParseRunStatus(name);
        if (!status || !IsTerminal(*status)) {
          return InvalidArgumentError(Where(path, item.source()) + ": retention.statuses: \"" +
                                      name +
                                      "\" is not finished, failed or cancelled (only runs that "
                                      "are over are deleted)");
        }
        if (std::find(r.statuses.begin(), r.statuses.end(), *status) == r.statuses.end()) {
          r.statuses.push_back(*status);
        }
      }
      if (r.statuses.empty()) {
        return InvalidArgumentError(Where(path, list->source()) +
                                    ": retention.statuses: must name at least one of finished, "
                                    "failed, cancelled");
      }
    }
    SMITHERS_RETURN_IF_ERROR(retention.Finish());
    if (retention_table->get("keep") == nullptr) {
      return InvalidArgumentError(Where(path, retention_table->source()) +
                                  ": retention.keep: required in [retention]: how long a run is "
                                  "kept after it ends, e.g. keep = \"30d\"");
    }
  }
  SMITHERS_RETURN_IF_ERROR(top.Finish());
  return out;
}

Result<GatewayConfig> LoadGatewayConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError(path + ": " + strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return InvalidArgumentError(path + ": cannot read");
  return ParseGatewayConfig(text.str(), path);
}

Result<std::string> ReadJwtSecret(const std::string& env_name, const std::string& file) {
  std::string secret;
  if (env_name.empty() == file.empty()) {
    return InvalidArgumentError("the JWT secret comes from one variable or one file");
  }
  if (!env_name.empty()) {
    // Moved out of the environment into the secret store, as a secret no task
    // may reference (base/secrets.h): neither a child nor /proc/PID/environ
    // sees it after this.
    base::ProcessSecrets().Capture(env_name, /*usable=*/false);
    std::optional<std::string> value = base::ProcessSecrets().GetInternal(env_name);
    if (!value) return InvalidArgumentError("$" + env_name + " (the JWT secret) is not set");
    secret = *value;
  } else {
    unsigned mode = 0;
    Result<std::string> read = base::ReadSecretFile(file, &mode);
    if (!read.ok()) return InvalidArgumentError(file + ": " + read.status().message());
    if ((mode & 077) != 0) {
      char text[16];
      snprintf(text, sizeof text, "%04o", mode & 07777u);
      return InvalidArgumentError(file + ": other users may read or change the JWT secret (mode " +
                                  text + "); chmod 600 " + file);
    }
    secret = std::move(read).value();
    if (secret.empty()) return InvalidArgumentError(file + ": the JWT secret file is empty");
    base::Secrets().Add(secret);
  }
  return secret;
}

}  // namespace smithers::gateway
