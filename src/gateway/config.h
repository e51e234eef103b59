// The Gateway's configuration file (`smithers gateway --config gateway.toml`,
// docs/gateway.md "Configuration file"): every GatewayOptions setting in
// TOML. The file never holds a secret: the JWT secret comes from an
// environment variable or a file it names.
//
//   Result<GatewayConfig> config = LoadGatewayConfig("/etc/smithers/gateway.toml");
//   if (!config.ok()) return Fail(config.status().message());  // "FILE:LINE:COL: key: why"
//   GatewayOptions options = config->options;  // then command-line flags over it
#ifndef SMITHERS_GATEWAY_CONFIG_H_
#define SMITHERS_GATEWAY_CONFIG_H_

#include <string>
#include <string_view>

#include "gateway/gateway.h"
#include "smithers/status.h"

namespace smithers::gateway {

struct GatewayConfig {
  // The file's settings over GatewayOptions' defaults. Relative paths in the
  // file (workflows, db, tls, access_log, auth.tokens, auth.jwt.secret_file)
  // are resolved against the file's folder. jwt.secret is left empty.
  GatewayOptions options;
  // Where the JWT secret comes from (auth.jwt.secret_env / secret_file);
  // both "" when the file names neither.
  std::string jwt_secret_env;
  std::string jwt_secret_file;
};

// Reads and checks a configuration file. InvalidArgument
// "PATH:LINE:COLUMN: KEY: reason" for a TOML syntax error, an unknown key, a
// value of the wrong type or out of range, or an inline secret; "PATH: reason"
// when it cannot be read.
Result<GatewayConfig> LoadGatewayConfig(const std::string& path);

// The same for the text of a file; `path` names it in errors and anchors its
// relative paths.
Result<GatewayConfig> ParseGatewayConfig(std::string_view text, const std::string& path);

// The JWT secret from the environment variable `env_name` (set, not empty;
// moved into the secret store and out of the environment, REQUIRES: no other
// thread is running) or from `file` (its contents without trailing white space; refused when
// group or other users may read it). Exactly one of the two is non-empty.
// The secret is given to the redactor.
// InvalidArgument naming the variable or the file.
Result<std::string> ReadJwtSecret(const std::string& env_name, const std::string& file);

}  // namespace smithers::gateway

#endif  // SMITHERS_GATEWAY_CONFIG_H_
