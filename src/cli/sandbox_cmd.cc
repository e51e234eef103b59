// `smithers sandbox selftest`: what a sandbox runtime enforces on this
// machine (src/sandbox/selftest.h, docs/sandbox.md "Self-test").
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "sandbox/egress.h"
#include "sandbox/sandbox.h"
#include "sandbox/selftest.h"
#include "smithers/json.h"

namespace smithers::cli {

SandboxCommands::SandboxCommands(CLI::App& app) {
  sandbox_cmd_ = app.add_subcommand(
      "sandbox", "Sandbox runtimes: check what they enforce here; the Sandbox component's worker");
  selftest_cmd_ = sandbox_cmd_->add_subcommand(
      "selftest",
      "Run escape attempts inside a runtime (root, capabilities, writes outside the workspace, "
      "remounts, the database, the network, the process, memory and CPU limits) and print "
      "which are refused; exit 0 only when every one is");
  worker_cmd_ = sandbox_cmd_->add_subcommand(
      "worker",
      "Run a Sandbox's request bundle (SMITHERS_SANDBOX_REQUEST_PATH) with a database of its "
      "own (SMITHERS_SANDBOX_STATE_PATH) and write its result bundle "
      "(SMITHERS_SANDBOX_RESULT_PATH): what the engine starts inside a sandbox, never typed by "
      "hand");
  worker_cmd_->footer(
      "Exit codes: 0 the result bundle was written (its status says how the child run ended); "
      "1 it could not be.");
  sandbox_cmd_->require_subcommand(1);
  std::string names;
  for (const std::string& n : sandbox::RuntimeNames()) names += (names.empty() ? "" : ", ") + n;
  selftest_cmd_->add_option("--runtime", runtime_, "The runtime to test (" + names + ")")
      ->capture_default_str();
  selftest_cmd_->add_option("--image", image_,
                            "For podman and docker: the image to run the probes in (it needs sh, "
                            "id, grep, readlink, seq, sleep, head, tr and cut)");
  selftest_cmd_->add_flag("--json", json_, "Print one JSON document on stdout");
  selftest_cmd_->footer(
      "Exit codes: 0 every attempt refused; 1 an attempt succeeded, or the runtime cannot "
      "start here; 4 an unknown runtime, or --image missing or not wanted.");
}

std::optional<int> SandboxCommands::RunEgressBridgeIfAsked(int argc, char** argv) {
  if (argc < 3 || std::string(argv[1]) != "sandbox" || std::string(argv[2]) != "egress-bridge") {
    return std::nullopt;
  }
  // Exactly the command line ConfineTask builds.
  if (argc < 9 || std::string(argv[3]) != "--socket" || std::string(argv[5]) != "--port" ||
      std::string(argv[7]) != "--") {
    std::cerr << "smithers sandbox egress-bridge: usage: --socket PATH --port N -- COMMAND...\n";
    return kExitBadInput;
  }
  return sandbox::RunEgressBridge(argv[4], std::atoi(argv[6]),
                                  std::vector<std::string>(argv + 8, argv + argc));
}

std::optional<int> SandboxCommands::RunKubeJobIfAsked(int argc, char** argv) {
  if (argc < 3 || std::string(argv[1]) != "sandbox" || std::string(argv[2]) != "kube-job") {
    return std::nullopt;
  }
  // Exactly the command line the kubernetes runtime builds.
  if (argc != 7 || std::string(argv[3]) != "--kubectl" || std::string(argv[5]) != "--manifest") {
    std::cerr << "smithers sandbox kube-job: usage: --kubectl PATH --manifest JSON\n";
    return kExitBadInput;
  }
  return sandbox::RunKubernetesJob(argv[4], argv[6]);
}

int SandboxCommands::Run() {
  if (worker_cmd_ != nullptr && *worker_cmd_) return SandboxWorker();
  if (selftest_cmd_ == nullptr || !*selftest_cmd_) return -1;
  auto show = [this](const sandbox::ProbeResult& p) {
    if (json_) return;
    std::cerr << (p.enforced ? "  refused       " : "  NOT REFUSED   ") << p.name << ": "
              << p.detail << "\n";
  };
  if (!json_) std::cerr << "sandbox selftest: runtime " << runtime_ << "\n";
  Result<sandbox::SelfTestReport> r = sandbox::SelfTest(runtime_, image_, show);
  if (!r.ok()) {
    int code = r.status().code() == StatusCode::kInvalidArgument ? kExitBadInput : kExitFailed;
    if (json_) {
      std::cout
          << Json{{"runtime", runtime_}, {"usable", false}, {"error", r.status().message()}}.dump(2)
          << "\n";
      return code;
    }
    return Fail(code, r.status().message());
  }
  int refused = 0;
  Json probes = Json::array();
  for (const sandbox::ProbeResult& p : r->probes) {
    refused += p.enforced ? 1 : 0;
    probes.push_back({{"attempt", p.name}, {"refused", p.enforced}, {"detail", p.detail}});
  }
  bool all = r->all_enforced();
  if (json_) {
    std::cout << Json{{"runtime", runtime_}, {"image", image_},  {"usable", true},
                      {"allRefused", all},   {"probes", probes}, {"cgroups", r->cgroups}}
                     .dump(2)
              << "\n";
  } else {
    for (const std::string& c : r->cgroups) std::cerr << "  cgroup " << c << "\n";
    std::cout << refused << " of " << r->probes.size() << " escape attempts refused by " << runtime_
              << (all ? "" : ": this runtime does NOT confine as documented") << "\n";
  }
  return all ? kExitOk : kExitFailed;
}

}  // namespace smithers::cli
