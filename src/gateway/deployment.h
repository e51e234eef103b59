// What a deployment check (`smithers doctor`, docs/operations.md "The release
// checklist") asks of the Gateway's rules: whether a bind address is
// loopback, and what a token grant amounts to.
//
//   if (!IsLoopbackHost(options.host) && options.tls_cert.empty()) { ... }  // TLS needed
//   if (GrantsEverything(grant.scopes)) { ... }  // `*` or the like: never in production
#ifndef SMITHERS_GATEWAY_DEPLOYMENT_H_
#define SMITHERS_GATEWAY_DEPLOYMENT_H_

#include <string>
#include <vector>

namespace smithers::gateway {

// True for "localhost", "::1" and 127.0.0.0/8, with or without a port
// ("127.0.0.1:7331", "[::1]:7331"): the addresses only this machine reaches.
bool IsLoopbackHost(std::string host);

// True when a grant holding `granted` may call every method the Gateway
// serves (the audit log's aside, which only run:admin or audit:read opens):
// `*`, the legacy `admin`, a `*` method wildcard, or scopes that add up to
// all of them.
bool GrantsEverything(const std::vector<std::string>& granted);

// True when it may call a method that changes runs or decides approvals
// (one whose scope is run:write or approval:submit), by scope, by an
// implying scope, by method name or by a legacy grant.
bool GrantsWrite(const std::vector<std::string>& granted);

}  // namespace smithers::gateway

#endif  // SMITHERS_GATEWAY_DEPLOYMENT_H_
