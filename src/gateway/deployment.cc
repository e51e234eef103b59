#include "gateway/deployment.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gateway/auth.h"
#include "gateway/methods.h"

namespace smithers::gateway {

bool IsLoopbackHost(std::string host) {
  if (!host.empty() && host.front() == '[') {
    size_t end = host.find(']');
    host = host.substr(1, end == std::string::npos ? std::string::npos : end - 1);
  } else if (std::count(host.begin(), host.end(), ':') == 1) {
    host = host.substr(0, host.find(':'));  // strip a port
  }
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

bool GrantsEverything(const std::vector<std::string>& granted) {
  const std::vector<Method>& methods = Methods();
  return std::all_of(methods.begin(), methods.end(), [&](const Method& m) {
    return m.scope == "audit:read" || ScopesAllow(granted, m.name, m.scope);
  });
}

bool GrantsWrite(const std::vector<std::string>& granted) {
  const std::vector<Method>& methods = Methods();
  return std::any_of(methods.begin(), methods.end(), [&](const Method& m) {
    return (m.scope == "run:write" || m.scope == "approval:submit") &&
           ScopesAllow(granted, m.name, m.scope);
  });
}

}  // namespace smithers::gateway
