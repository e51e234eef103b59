// gateway.toml (ParseGatewayConfig, ReadJwtSecret) and tokens files
// (ParseTokenFile, ReadTokenFile, TokenFile's reloads).
#include "gateway/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gateway/auth.h"

namespace smithers::gateway {
namespace {

// A private temporary folder, removed at the end.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/smithers-config-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf " + path_).c_str()); }  // NOLINT(cert-env33-c)
  std::string Write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::trunc) << text;
    chmod(p.c_str(), mode);
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ErrorOf(const Result<GatewayConfig>& r) {
  return r.ok() ? "(ok)" : r.status().message();
}

TEST(GatewayConfigTest, EmptyFileKeepsTheDefaults) {
  Result<GatewayConfig> c = ParseGatewayConfig("", "g.toml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  GatewayOptions defaults;
  EXPECT_EQ(c->options.port, defaults.port);
  EXPECT_EQ(c->options.auth, "token");
  EXPECT_EQ(c->options.max_body_bytes, defaults.max_body_bytes);
  EXPECT_FALSE(c->options.trusted_modules) << "modules are restricted unless the file says so";
  EXPECT_FALSE(c->options.require_sandbox);
  EXPECT_EQ(c->jwt_secret_env, "");
}

TEST(GatewayConfigTest, EverySettingIsReadAndPathsAreRelativeToTheFile) {
  Result<GatewayConfig> c = ParseGatewayConfig(R"(
workflows = "wf"
host = "0.0.0.0"
port = 8443
db = "/var/lib/smithers/s.db"
synchronous = "normal"
insecure = true
heartbeat_ms = 5000
access_log = "log/access.log"
trusted_modules = true
require_sandbox = true
module_workspace = "module-files"
allowed_origins = ["https://console.example.com", "http://localhost:8080"]

[secrets]
allow = ["env:OPENAI_API_KEY", "file:/run/secrets/*"]

[tls]
cert = "cert.pem"
key = "key.pem"

[auth]
mode = "JWT"
tokens = "tokens.json"
proxy_default_scopes = ["run:read"]

[auth.jwt]
issuer = "idp"
audience = "smithers"
secret_env = "JWT_SECRET"
clock_skew_ms = 1000
default_scopes = ["run:read", "approval:read"]

[limits]
max_body_bytes = 10
max_frame_bytes = 11
max_connections = 12
max_preauth_connections = 13
max_queue_bytes = 14
max_queue_frames = 15
slow_consumer_ms = 16
connect_timeout_ms = 17
max_json_depth = 18
)",
                                               "/etc/smithers/gateway.toml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  const GatewayOptions& o = c->options;
  EXPECT_EQ(o.workflows_dir, "/etc/smithers/wf");
  EXPECT_EQ(o.host, "0.0.0.0");
  EXPECT_EQ(o.port, 8443);
  EXPECT_EQ(o.db, "/var/lib/smithers/s.db");
  EXPECT_EQ(o.synchronous, "NORMAL");
  EXPECT_TRUE(o.insecure);
  EXPECT_EQ(o.heartbeat_ms, 5000);
  EXPECT_EQ(o.access_log, "/etc/smithers/log/access.log");
  EXPECT_TRUE(o.trusted_modules);
  EXPECT_TRUE(o.require_sandbox);
  EXPECT_EQ(o.module_workspace, "/etc/smithers/module-files");
  EXPECT_EQ(o.secret_refs_allowed,
            (std::vector<std::string>{"env:OPENAI_API_KEY", "file:/run/secrets/*"}));
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("[secrets]\nallow = [\"vault:x\"]\n", "g.toml")),
            "g.toml:2:9: secrets.allow: \"vault:x\" must start with \"env:\" or \"file:/\"");
  EXPECT_EQ(o.allowed_origins,
            (std::vector<std::string>{"https://console.example.com", "http://localhost:8080"}));
  EXPECT_EQ(o.tls_cert, "/etc/smithers/cert.pem");
  EXPECT_EQ(o.tls_key, "/etc/smithers/key.pem");
  EXPECT_EQ(o.auth, "jwt");
  EXPECT_EQ(o.tokens_file, "/etc/smithers/tokens.json");
  EXPECT_EQ(o.proxy_default_scopes, std::vector<std::string>{"run:read"});
  EXPECT_EQ(o.jwt.issuer, "idp");
  EXPECT_EQ(o.jwt.audience, "smithers");
  EXPECT_EQ(o.jwt.secret, "");
  EXPECT_EQ(c->jwt_secret_env, "JWT_SECRET");
  EXPECT_EQ(o.jwt.clock_skew_ms, 1000);
  EXPECT_EQ(o.jwt.default_scopes.size(), 2u);
  EXPECT_EQ(o.max_body_bytes, 10u);
  EXPECT_EQ(o.max_frame_bytes, 11u);
  EXPECT_EQ(o.max_connections, 12);
  EXPECT_EQ(o.max_preauth_connections, 13);
  EXPECT_EQ(o.max_queue_bytes, 14u);
  EXPECT_EQ(o.max_queue_frames, 15);
  EXPECT_EQ(o.slow_consumer_ms, 16);
  EXPECT_EQ(o.connect_timeout_ms, 17);
  EXPECT_EQ(o.max_json_depth, 18);
}

TEST(GatewayConfigTest, TrustedProxiesMaxTokenTtlAndGroupReadable) {
  Result<GatewayConfig> c = ParseGatewayConfig(R"(
group_readable = true
[auth]
mode = "trusted-proxy"
trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"]
max_token_ttl = "7d"
)",
                                               "/etc/s/g.toml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->options.group_readable);
  EXPECT_EQ(c->options.trusted_proxies,
            (std::vector<std::string>{"127.0.0.1", "10.0.0.0/8", "fd00::/8"}));
  EXPECT_EQ(c->options.max_token_ttl_ms, 7 * 86400000LL);
  EXPECT_EQ(GatewayOptions().max_token_ttl_ms, 30 * 86400000LL);
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("[auth]\ntrusted_proxies = [\"nope\"]\n", "g.toml")),
            "g.toml:2:19: auth.trusted_proxies: trusted proxy \"nope\" is not an IP address or a "
            "CIDR block (10.0.0.0/8)");
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("[auth]\nmax_token_ttl = \"99999999999999d\"\n", "g.toml")),
            "g.toml:2:17: auth.max_token_ttl: \"99999999999999d\" is not a duration like 30d");
}

TEST(GatewayConfigTest, AccessLogDashAndEmptyAreNotPaths) {
  Result<GatewayConfig> c = ParseGatewayConfig("access_log = \"-\"\n", "conf/g.toml");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->options.access_log, "-");
  c = ParseGatewayConfig("access_log = \"\"\nworkflows = \"w\"\n", "conf/g.toml");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->options.access_log, "");
  EXPECT_EQ(c->options.workflows_dir, "conf/w");
  c = ParseGatewayConfig("workflows = \"w\"\n", "g.toml");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->options.workflows_dir, "w");
}

TEST(GatewayConfigTest, DbIsAStoreUrlWithFilePathsRelativeToTheFile) {
  auto db_of = [](const std::string& value) {
    Result<GatewayConfig> c = ParseGatewayConfig("db = \"" + value + "\"\n", "conf/g.toml");
    EXPECT_TRUE(c.ok()) << value << ": " << c.status().message();
    return c.ok() ? c->options.db : "";
  };
  EXPECT_EQ(db_of("s.db"), "conf/s.db");
  EXPECT_EQ(db_of("sqlite:s.db"), "sqlite:conf/s.db");
  EXPECT_EQ(db_of("sqlite:/var/s.db"), "sqlite:/var/s.db");
  EXPECT_EQ(db_of("sqlite:///var/s.db"), "sqlite:///var/s.db");
  EXPECT_EQ(db_of("a:b.db"), "conf/a:b.db");
  // A server's URL is kept whole.
  EXPECT_EQ(db_of("postgres://app@h:5432/db?sslmode=require"),
            "postgres://app@h:5432/db?sslmode=require");
  for (const char* bad : {"postgres:db", "foo://bar", "", "sqlite:"}) {
    Result<GatewayConfig> c =
        ParseGatewayConfig("db = \"" + std::string(bad) + "\"\n", "conf/g.toml");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(c.status().message().find("conf/g.toml:1:"), std::string::npos)
        << c.status().message();
  }
}

TEST(GatewayConfigTest, ErrorsNameTheFileLineAndKey) {
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("port = 1\nprot = 2\n", "g.toml")),
            "g.toml:2:1: prot: unknown key (known here: access_log, allowed_origins, audit_key, "
            "auth, db, "
            "group_readable, heartbeat_ms, host, insecure, limits, module_workspace, port, "
            "require_sandbox, retention, secrets, synchronous, tls, trusted_modules, workflows)");
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("port = \"80\"\n", "g.toml")),
            "g.toml:1:8: port: must be an integer, not a string");
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("port = -1\n", "g.toml")),
            "g.toml:1:8: port: must be between 0 and 65535, not -1");
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("[limits]\nmax_connections = 0\n", "g.toml")),
            "g.toml:2:19: limits.max_connections: must be between 1 and 2147483647, not 0");
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("[limits]\nmax_body_bytes = 1.5\n", "g.toml")),
            "g.toml:2:18: limits.max_body_bytes: must be an integer, not a float");
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("tls = 1\n", "g.toml")),
            "g.toml:1:7: tls: must be a table, not an integer");
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("[auth]\nproxy_default_scopes = [\"a\", 1]\n", "g.toml")),
            "g.toml:2:30: auth.proxy_default_scopes: must be an array of strings, not an integer");
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("synchronous = \"OFF\"\n", "g.toml")),
            "g.toml:1:15: synchronous: must be one of FULL, NORMAL, not \"OFF\"");
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("[tls]\ncert = \"\"\n", "g.toml")),
            "g.toml:2:8: tls.cert: must not be empty");
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("[limits]\nbogus = 1\n", "g.toml")).substr(0, 34),
            "g.toml:2:1: limits.bogus: unknown ");
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("[limits]\nmax_json_depth = 1001\n", "g.toml")),
            "g.toml:2:18: limits.max_json_depth: must be between 1 and 1000, not 1001");
  std::string syntax = ErrorOf(ParseGatewayConfig("port = \n", "g.toml"));
  EXPECT_EQ(syntax.substr(0, 9), "g.toml:1:") << syntax;
}

TEST(GatewayConfigTest, RetentionIsOffUnlessTheTableIsThere) {
  constexpr int64_t kHour = 60LL * 60 * 1000, kDay = 24 * kHour;
  const std::vector<RunStatus> over = {RunStatus::kFinished, RunStatus::kFailed,
                                       RunStatus::kCancelled};
  Result<GatewayConfig> c = ParseGatewayConfig("", "g.toml");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->options.retention.keep_ms, 0) << "no [retention]: nothing is deleted";

  // keep alone: every status that is over, a sweep an hour.
  c = ParseGatewayConfig("[retention]\nkeep = \"30d\"\n", "g.toml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->options.retention.keep_ms, 30 * kDay);
  EXPECT_EQ(c->options.retention.statuses, over);
  EXPECT_EQ(c->options.retention.every_ms, kHour);

  c = ParseGatewayConfig(
      "[retention]\nkeep = \"1h\"\nstatuses = [\"failed\", \"cancelled\", \"failed\"]\n"
      "every = \"1m\"\n",
      "g.toml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->options.retention.keep_ms, kHour);
  EXPECT_EQ(c->options.retention.statuses,
            (std::vector<RunStatus>{RunStatus::kFailed, RunStatus::kCancelled}));
  EXPECT_EQ(c->options.retention.every_ms, 60000);
  c = ParseGatewayConfig("[retention]\nkeep = \"90m\"\nevery = \"365d\"\n", "g.toml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->options.retention.keep_ms, 90 * 60000);
  EXPECT_EQ(c->options.retention.every_ms, 365 * kDay);
}

TEST(GatewayConfigTest, RetentionErrorsNameTheKey) {
  auto error_of = [](const std::string& table) {
    return ErrorOf(ParseGatewayConfig("[retention]\n" + table, "g.toml"));
  };
  EXPECT_EQ(error_of("keep = \"soon\"\n"),
            "g.toml:2:8: retention.keep: \"soon\" is not a duration like 30d, 12h or 90m");
  EXPECT_EQ(error_of("keep = \"99999999999999d\"\n"),
            "g.toml:2:8: retention.keep: \"99999999999999d\" is not a duration like 30d, 12h or "
            "90m");
  EXPECT_EQ(error_of("keep = \"59m\"\n"),
            "g.toml:2:8: retention.keep: must be at least 1h, not \"59m\"");
  EXPECT_EQ(error_of("keep = 30\n"),
            "g.toml:2:8: retention.keep: must be a string, not an integer");
  EXPECT_EQ(error_of("keep = \"30d\"\nevery = \"59s\"\n"),
            "g.toml:3:9: retention.every: must be at least 1m, not \"59s\"");
  EXPECT_EQ(error_of("keep = \"30d\"\nevery = \"366d\"\n"),
            "g.toml:3:9: retention.every: must be at most 365d, not \"366d\"");
  EXPECT_EQ(error_of("keep = \"30d\"\nstatuses = [\"finished\", \"waiting-approval\"]\n"),
            "g.toml:3:25: retention.statuses: \"waiting-approval\" is not finished, failed or "
            "cancelled (only runs that are over are deleted)");
  EXPECT_EQ(error_of("keep = \"30d\"\nstatuses = [\"Finished\"]\n"),
            "g.toml:3:13: retention.statuses: \"Finished\" is not finished, failed or cancelled "
            "(only runs that are over are deleted)");
  EXPECT_EQ(error_of("keep = \"30d\"\nstatuses = []\n"),
            "g.toml:3:12: retention.statuses: must name at least one of finished, failed, "
            "cancelled");
  EXPECT_EQ(error_of("keep = \"30d\"\nstatuses = \"failed\"\n"),
            "g.toml:3:12: retention.statuses: must be an array of strings, not a string");
  EXPECT_EQ(error_of("keep = \"30d\"\nkeep_days = 30\n"),
            "g.toml:3:1: retention.keep_days: unknown key (known here: every, keep, statuses)");
  // An unknown key is named before a missing keep: it is most likely keep misspelt.
  EXPECT_EQ(error_of("kepp = \"30d\"\n"),
            "g.toml:2:1: retention.kepp: unknown key (known here: every, keep, statuses)");
  EXPECT_EQ(error_of("every = \"1h\"\n"),
            "g.toml:1:1: retention.keep: required in [retention]: how long a run is kept after "
            "it ends, e.g. keep = \"30d\"");
  EXPECT_EQ(ErrorOf(ParseGatewayConfig("retention = \"30d\"\n", "g.toml")),
            "g.toml:1:13: retention: must be a table, not a string");
}

TEST(GatewayConfigTest, AnInlineSecretIsRefusedWithoutEchoingIt) {
  std::string e = ErrorOf(ParseGatewayConfig("[auth.jwt]\nsecret = \"hunter2\"\n", "g.toml"));
  EXPECT_EQ(e.substr(0, 44), "g.toml:2:10: auth.jwt.secret: a secret is ne") << e;
  EXPECT_NE(e.find("secret_env"), std::string::npos);
  EXPECT_EQ(e.find("hunter2"), std::string::npos);
  e = ErrorOf(
      ParseGatewayConfig("[auth.jwt]\nsecret_env = \"A\"\nsecret_file = \"b\"\n", "g.toml"));
  EXPECT_NE(e.find("exclude each other"), std::string::npos) << e;
}

TEST(GatewayConfigTest, JwtSecretFromAVariableOrAPrivateFile) {
  TempDir dir;
  setenv("SMITHERS_CONFIG_TEST_SECRET", "from-env", 1);
  Result<std::string> s = ReadJwtSecret("SMITHERS_CONFIG_TEST_SECRET", "");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, "from-env");
  EXPECT_FALSE(ReadJwtSecret("SMITHERS_CONFIG_TEST_UNSET", "").ok());
  std::string file = dir.Write("secret", "from-file\n\n");
  s = ReadJwtSecret("", file);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(*s, "from-file");
  chmod(file.c_str(), 0640);
  s = ReadJwtSecret("", file);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("mode 0640"), std::string::npos);
  EXPECT_FALSE(ReadJwtSecret("", dir.Write("empty", "\n")).ok());
  EXPECT_FALSE(ReadJwtSecret("", "").ok());
}

// ---- tokens files ----

const std::string kBearer = "smithers_" + std::string(43, 'a');

std::string TokenErrorOf(const std::string& text) {
  Result<FileGrants> r = ParseTokenFile(text);
  return r.ok() ? "(ok)" : r.status().message();
}

TEST(TokenFileTest, VersionTwoIsKeyedByBearerAndKeepsOnlyItsHash) {
  Result<FileGrants> g = ParseTokenFile(R"({"version": 2, "tokens": {")" + kBearer +
                                        R"(": {"role": "ops", "scopes": ["run:read"],
      "userId": "alice", "issuedAtMs": 1, "expiresAtMs": 9, "revokedAtMs": null,
      "secret": "x", "tokenHash": ")" + TokenHash(kBearer) +
                                        R"("}}, "actionTokens": {}, "audit": []})");
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_TRUE(g->holds_bearers);
  ASSERT_EQ(g->by_hash.size(), 1u);
  const FileGrant& grant = g->by_hash.begin()->second;
  EXPECT_EQ(g->by_hash.begin()->first, TokenHash(kBearer));
  EXPECT_EQ(grant.token_hash, TokenHash(kBearer));
  EXPECT_EQ(grant.token_id, TokenHash(kBearer).substr(0, 16));
  EXPECT_EQ(grant.role, "ops");
  EXPECT_EQ(grant.user_id, "alice");
  EXPECT_EQ(grant.scopes, std::vector<std::string>{"run:read"});
  EXPECT_EQ(grant.issued_at_ms, 1);
  EXPECT_EQ(grant.expires_at_ms, 9);
  EXPECT_EQ(grant.revoked_at_ms, 0);
}

TEST(TokenFileTest, HashOnlyAndVersionOneEntriesAreKeyedByName) {
  std::string hash = TokenHash("b");
  for (const char* version : {"1", "2"}) {
    Result<FileGrants> g =
        ParseTokenFile(std::string(R"({"version": )") + version +
                       R"(, "tokens": {"ci": {"tokenHash": ")" + hash + R"(", "scopes": ["*"]}}})");
    ASSERT_TRUE(g.ok()) << g.status().message();
    EXPECT_FALSE(g->holds_bearers);
    ASSERT_EQ(g->by_hash.count(hash), 1u);
    EXPECT_EQ(g->by_hash.at(hash).token_id, "ci");
    EXPECT_EQ(g->by_hash.at(hash).role, "operator");
  }
  // An explicit tokenId wins; upper-case hex is accepted.
  std::string upper = hash;
  for (char& c : upper) c = static_cast<char>(toupper(c));
  Result<FileGrants> g = ParseTokenFile(R"({"tokens": {"ci": {"tokenHash": ")" + upper +
                                        R"(", "tokenId": "t1", "scopes": []}}})");
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->by_hash.at(hash).token_id, "t1");
}

TEST(TokenFileTest, ErrorsNameTheEntryButNeverABearer) {
  std::string entry = R"({"tokens": {")" + kBearer + R"(": )";
  std::string id = TokenHash(kBearer).substr(0, 16);
  EXPECT_EQ(TokenErrorOf(entry + R"({"scopes": ["x"], "expiresAt": 1}}})"),
            "token " + id +
                ": unknown field \"expiresAt\" (known: tokenId, tokenHash, role, scopes, userId, "
                "issuedAtMs, expiresAtMs, revokedAtMs)");
  EXPECT_EQ(TokenErrorOf(entry + R"({"scopes": "run:read"}}})"),
            "token " + id + ": scopes must be an array of strings");
  EXPECT_EQ(TokenErrorOf(entry + R"({"role": "x"}}})"), "token " + id + ": scopes is missing");
  EXPECT_EQ(TokenErrorOf(entry + R"({"scopes": [], "expiresAtMs": "soon"}}})"),
            "token " + id + ": expiresAtMs must be milliseconds since 1970 (an integer) or null");
  EXPECT_EQ(TokenErrorOf(entry + R"([]}})"), "token " + id + ": a grant must be a JSON object");
  EXPECT_EQ(TokenErrorOf(R"({"version": 1, "tokens": {")" + kBearer + R"(": {"scopes": []}}})"),
            "token " + id + ": a version 1 entry is keyed by its token id and needs tokenHash");
  EXPECT_EQ(TokenErrorOf(R"({"tokens": {"ci": {"tokenHash": "abc", "scopes": []}}})"),
            "entry \"ci\": tokenHash must be 64 hex digits (SHA-256)");
  EXPECT_EQ(TokenErrorOf(R"({"tokens": {"ci": {"tokenHash": ")" + TokenHash(kBearer) +
                         R"(", "scopes": []}, ")" + kBearer + R"(": {"scopes": []}}})"),
            "token " + id + ": a second entry for the same token");
  EXPECT_EQ(TokenErrorOf(R"({"version": 3, "tokens": {}})"), "version must be 1 or 2");
  EXPECT_EQ(TokenErrorOf(R"({"tokens": {}, "grants": {}})"),
            "unknown key \"grants\" (known: version, tokens, actionTokens, audit)");
  EXPECT_EQ(TokenErrorOf(R"({"version": 2})"), "\"tokens\" must be an object of grants");
  EXPECT_EQ(TokenErrorOf("[]"), "not a JSON object");
  std::string broken = TokenErrorOf("{\n  \"tokens\": {\"" + kBearer + "\": {scopes}}}");
  EXPECT_EQ(broken.substr(0, 26), "not valid JSON (line 2, co") << broken;
  EXPECT_EQ(broken.find("aaaa"), std::string::npos) << broken;
  // Too deep: refused before it is parsed, and the path (a bearer) is not named.
  std::string deep = TokenErrorOf(entry + R"({"scopes": )" + std::string(100000, '[') +
                                  std::string(100000, ']') + "}}}");
  EXPECT_EQ(deep, "nests deeper than 64 levels of arrays and objects (max_json_depth)");
}

TEST(TokenFileTest, ReadRefusesAFileOthersMayRead) {
  TempDir dir;
  std::string text = R"({"tokens": {")" + kBearer + R"(": {"scopes": ["*"]}}})";
  std::string path = dir.Write("tokens.json", text, 0604);
  Result<FileGrants> g = ReadTokenFile(path);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().message(),
            path + ": other users may read or change it (mode 0604); chmod 600 " + path);
  chmod(path.c_str(), 0600);
  EXPECT_TRUE(ReadTokenFile(path).ok());
  EXPECT_FALSE(ReadTokenFile(dir.path() + "/missing.json").ok());
  EXPECT_FALSE(ReadTokenFile(dir.path()).ok());
}

TEST(TokenFileTest, RefreshFollowsEditsAndKeepsTheLastGoodGrants) {
  TempDir dir;
  std::string hash = TokenHash(kBearer);
  auto file_with = [&](const std::string& extra) {
    // Duplicate keys: the last one counts, so `extra` may set expiresAtMs.
    return R"({"tokens": {")" + kBearer + R"(": {"scopes": ["*"], "expiresAtMs": 100000)" + extra +
           "}}}";
  };
  std::string path = dir.Write("tokens.json", file_with(""));
  TokenFile tokens(path);
  EXPECT_FALSE(tokens.Check(hash, 0).value().has_value());  // nothing read yet
  std::optional<Json> line = tokens.Refresh(1000);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ((*line)["event"], "tokens.loaded");
  EXPECT_EQ((*line)["grants"], 1);
  EXPECT_FALSE(tokens.Refresh(1001).has_value());  // unchanged: no read, no line
  ASSERT_TRUE(tokens.Check(hash, 1001).ok());
  EXPECT_TRUE(tokens.Check(hash, 1001).value().has_value());
  EXPECT_FALSE(tokens.Check(TokenHash("other"), 1001).value().has_value());

  dir.Write("tokens.json", file_with(R"(, "expiresAtMs": 5000, "revokedAtMs": 7000)"));
  ASSERT_TRUE(tokens.Refresh(1002).has_value());
  EXPECT_TRUE(tokens.Check(hash, 4999).ok());
  EXPECT_EQ(tokens.Check(hash, 5000).status().message(),
            "token " + hash.substr(0, 16) + " expired");

  // A broken edit: logged once, retried once a second, the last grants kept.
  dir.Write("tokens.json", "{\"tokens\": ");
  line = tokens.Refresh(2000);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ((*line)["event"], "tokens.load_failed");
  EXPECT_EQ((*line)["grants"], 1);
  EXPECT_FALSE(tokens.Refresh(2500).has_value());
  EXPECT_FALSE(tokens.Refresh(3100).has_value());  // retried, same failure: silent
  EXPECT_TRUE(tokens.Check(hash, 4000).value().has_value());

  // A revocation after the broken edit applies.
  dir.Write("tokens.json", file_with(R"(, "revokedAtMs": 10)"));
  line = tokens.Refresh(3200);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ((*line)["event"], "tokens.loaded");
  EXPECT_EQ(tokens.Check(hash, 3200).status().message(),
            "token " + hash.substr(0, 16) + " was revoked");

  // A chmod alone is a change: a file made readable by others stops loading.
  chmod(path.c_str(), 0644);
  line = tokens.Refresh(3300);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ((*line)["event"], "tokens.load_failed");
  EXPECT_FALSE(TokenFile("").Refresh(0).has_value());
}

TEST(TokenFileTest, GrantsWithoutExpiryOrOverTheMaximumAreIgnoredAndLogged) {
  TempDir dir;
  const int64_t day = 86400000, now = 1000 * day;
  const std::string never = "smithers_never", far = "smithers_far", old = "smithers_old";
  std::string text = R"({"tokens": {")" + kBearer + R"(": {"scopes": ["*"], "expiresAtMs": )" +
                     std::to_string(now + day) + R"(}, ")" + never + R"(": {"scopes": ["*"]}, ")" +
                     far + R"(": {"scopes": ["*"], "expiresAtMs": )" +
                     std::to_string(now + 31 * day) + R"(}, ")" + old +
                     R"(": {"scopes": ["*"], "issuedAtMs": )" + std::to_string(now - 40 * day) +
                     R"(, "expiresAtMs": )" + std::to_string(now + day) + "}}}";
  std::string path = dir.Write("tokens.json", text);
  TokenFile tokens(path, 30 * day);
  std::optional<Json> line = tokens.Refresh(now);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ((*line)["event"], "tokens.loaded");
  EXPECT_EQ((*line)["grants"], 1);
  ASSERT_EQ((*line)["refused"].size(), 3u) << line->dump();
  EXPECT_EQ(line->dump().find("smithers_"), std::string::npos) << "never a bearer";
  EXPECT_TRUE(tokens.Check(TokenHash(kBearer), now).value().has_value());
  for (const std::string& bearer : {never, far, old}) {
    Result<std::optional<FileGrant>> g = tokens.Check(TokenHash(bearer), now);
    ASSERT_FALSE(g.ok()) << bearer;
    EXPECT_NE(g.status().message().find("refused"), std::string::npos) << g.status().message();
  }
  EXPECT_NE(tokens.Check(TokenHash(never), now).status().message().find("no expiresAtMs"),
            std::string::npos);
  // A larger maximum admits the long ones, never the one without expiry.
  TokenFile lenient(path, 60 * day);
  lenient.Refresh(now);
  EXPECT_TRUE(lenient.Check(TokenHash(far), now).ok());
  EXPECT_TRUE(lenient.Check(TokenHash(old), now).ok());
  EXPECT_FALSE(lenient.Check(TokenHash(never), now).ok());
}

}  // namespace
}  // namespace smithers::gateway
