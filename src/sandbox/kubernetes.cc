// The kubernetes runtime (docs/sandbox.md "Kubernetes"): a task runs as a
// Job of one pod in the cluster kubectl is configured for. The engine's
// client process is this binary's `sandbox kube-job` (RunKubernetesJob),
// which applies the Job, a NetworkPolicy and a Secret holding the task's
// environment, waits for the pod, prints its log, deletes what it applied
// and exits with the pod's exit code.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

#include "base/subprocess.h"
#include "sandbox/runtimes.h"

namespace smithers::sandbox {
namespace {

constexpr char kJobLabel[] = "smithers.sh/job";
constexpr char kSandboxLabel[] = "smithers.sh/sandbox";

// "0.5" cores as Kubernetes' millicores, "500m".
std::string MilliCpu(double cpus) { return std::to_string(std::llround(cpus * 1000)) + "m"; }

// The engine's binary, which the engine runs as the Job's client.
std::string SelfExe() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("smithers") : self.string();
}

// A Kubernetes object's name: lower-case letters, digits and '-'.
std::string ObjectName(const std::string& name) {
  std::string out;
  for (char c : name.empty() ? std::string("smithers-sandbox") : name) {
    out += std::isalnum(static_cast<unsigned char>(c)) != 0
               ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
               : '-';
  }
  return out.substr(0, 63);
}

}  // namespace

Status CheckKubernetes(const Confinement& c) {
  if (c.limits.pids > 0) {
    return InvalidArgumentError(
        "the kubernetes runtime cannot enforce pidsLimit (a pod's process limit is the node's "
        "kubelet setting); leave it unset or use another runtime");
  }
  if (!c.ports.empty()) {
    return InvalidArgumentError("the kubernetes runtime publishes no ports");
  }
  if (!c.binds.empty() || !c.ro_binds.empty()) {
    return InvalidArgumentError(
        "the kubernetes runtime shows no host paths (volumes, an egress proxy, a Sandbox's "
        "bundles): its pod runs on a node of the cluster, not beside the engine");
  }
  return Status::Ok();
}

Json KubernetesManifest(const Confinement& c, const std::vector<std::string>& argv) {
  const std::string name = ObjectName(c.name);
  const Json labels = {{kSandboxLabel, "1"}, {kJobLabel, name}};
  Json env = Json::array();
  for (const std::string& n : c.env_names) {
    env.push_back(
        {{"name", n}, {"valueFrom", {{"secretKeyRef", {{"name", name + "-env"}, {"key", n}}}}}});
  }
  Json resources = Json::object();
  if (c.limits.memory_bytes > 0) resources["memory"] = std::to_string(c.limits.memory_bytes);
  if (c.limits.cpus > 0) resources["cpu"] = MilliCpu(c.limits.cpus);
  Json container = {{"name", "task"},
                    {"image", c.image},
                    {"imagePullPolicy", "Never"},
                    {"command", argv},
                    {"workingDir", c.workspace},
                    {"env", env},
                    {"resources", {{"limits", resources}, {"requests", resources}}},
                    {"securityContext",
                     {{"allowPrivilegeEscalation", false},
                      {"privileged", false},
                      {"readOnlyRootFilesystem", true},
                      {"runAsNonRoot", true},
                      {"runAsUser", 65534},
                      {"runAsGroup", 65534},
                      {"capabilities", {{"drop", {"ALL"}}}}}},
                    {"volumeMounts",
                     {{{"name", "tmp"}, {"mountPath", "/tmp"}},
                      {{"name", "workspace"}, {"mountPath", c.workspace}}}}};
  Json job = {{"apiVersion", "batch/v1"},
              {"kind", "Job"},
              {"metadata", {{"name", name}, {"labels", labels}}},
              {"spec",
               {{"backoffLimit", 0},
                {"ttlSecondsAfterFinished", 600},
                {"template",
                 {{"metadata", {{"labels", labels}}},
                  {"spec",
                   {{"restartPolicy", "Never"},
                    {"automountServiceAccountToken", false},
                    {"enableServiceLinks", false},
                    {"hostNetwork", false},
                    {"hostPID", false},
                    {"hostIPC", false},
                    {"securityContext",
                     {{"runAsNonRoot", true},
                      {"runAsUser", 65534},
                      {"runAsGroup", 65534},
                      {"fsGroup", 65534},
                      {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
                    {"containers", {container}},
                    {"volumes",
                     {{{"name", "tmp"}, {"emptyDir", Json::object()}},
                      {{"name", "workspace"}, {"emptyDir", Json::object()}}}}}}}}}}};
  // No traffic in; none out unless allowNetwork (an empty rule list denies
  // all where the cluster's network plugin enforces NetworkPolicy).
  Json policy = {{"apiVersion", "networking.k8s.io/v1"},
                 {"kind", "NetworkPolicy"},
                 {"metadata", {{"name", name}, {"labels", labels}}},
                 {"spec",
                  {{"podSelector", {{"matchLabels", {{kJobLabel, name}}}}},
                   {"policyTypes", {"Ingress", "Egress"}},
                   {"ingress", Json::array()},
                   {"egress", c.allow_network ? Json::array({Json::object()}) : Json::array()}}}};
  return {{"apiVersion", "v1"}, {"kind", "List"}, {"items", {policy, job}}};
}

// `program` by its path: a bare name is looked up on the engine's PATH now
// (the client runs with the task's environment; the runtime's probe with a
// fixed PATH). Unchanged when not found: kubectl then says so.
std::string KubectlPath(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    size_t colon = dirs.find(':', start);
    if (colon == std::string::npos) colon = dirs.size();
    std::string dir = dirs.substr(start, colon - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = colon + 1;
  }
  return program;
}

std::vector<std::string> KubernetesArgv(const Confinement& c, const std::string& program,
                                        const std::vector<std::string>& argv) {
  return {SelfExe(),
          "sandbox",
          "kube-job",
          "--kubectl",
          KubectlPath(program),
          "--manifest",
          KubernetesManifest(c, argv).dump()};
}

namespace {

std::atomic<bool> g_stop{false};
void OnStop(int /*sig*/) { g_stop.store(true); }

Result<base::ProcessResult> Kubectl(const std::string& kubectl, std::vector<std::string> args,
                                    const std::optional<std::string>& input = std::nullopt) {
  base::ProcessSpec spec;
  spec.argv = {kubectl};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  for (const char* name : {"PATH", "HOME", "KUBECONFIG"}) {
    if (const char* v = std::getenv(name)) spec.env.push_back(std::string(name) + "=" + v);
  }
  spec.stdin_data = input;
  spec.max_stdout_bytes = spec.max_stderr_bytes = 16 << 20;
  spec.deadline_ms = SystemClock().MonotonicMs() + 60000;
  return base::RunProcess(spec);
}

std::string Said(const Result<base::ProcessResult>& r) {
  if (!r.ok()) return r.status().message();
  std::string s = r->err.empty() ? r->out : r->err;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

int RunKubernetesJob(const std::string& kubectl, const std::string& manifest_text) {
  Json manifest = Json::parse(manifest_text, nullptr, /*allow_exceptions=*/false);
  if (!manifest.is_object() || !manifest.contains("items") || !manifest["items"].is_array()) {
    std::cerr << "smithers sandbox kube-job: the manifest is not the engine's\n";
    return 125;
  }
  std::string name;
  Json env_names = Json::array();
  const Json::json_pointer name_at("/metadata/name");
  const Json::json_pointer env_at("/spec/template/spec/containers/0/env");
  for (const Json& item : manifest["items"]) {
    if (!item.is_object() || item.value("kind", "") != "Job") continue;
    if (item.contains(name_at) && item.at(name_at).is_string()) name = item.at(name_at);
    if (!item.contains(env_at) || !item.at(env_at).is_array()) continue;
    for (const Json& e : item.at(env_at)) {
      if (e.is_object() && e.contains("name") && e["name"].is_string()) {
        env_names.push_back(e["name"]);
      }
    }
  }
  if (name.empty()) {
    std::cerr << "smithers sandbox kube-job: the manifest has no Job\n";
    return 125;
  }
  // The task's environment, from this process's own (the engine gave it),
  // into a Secret the Job reads by reference: never in the Job's manifest.
  Json data = Json::object();
  for (const Json& n : env_names) {
    const char* v = std::getenv(n.get<std::string>().c_str());
    data[n.get<std::string>()] = v == nullptr ? "" : v;
  }
  Json secret = {{"apiVersion", "v1"},
                 {"kind", "Secret"},
                 {"metadata",
                  {{"name", name + "-env"}, {"labels", {{kSandboxLabel, "1"}, {kJobLabel, name}}}}},
                 {"type", "Opaque"},
                 {"stringData", data}};
  manifest["items"].insert(manifest["items"].begin(), secret);
  struct sigaction sa {};
  sa.sa_handler = OnStop;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  const std::string selector = std::string(kJobLabel) + "=" + name;
  auto cleanup = [&] {
    (void)Kubectl(kubectl, {"delete", "job,networkpolicy,secret", "-l", selector,
                            "--ignore-not-found", "--wait=false"});
  };
  Result<base::ProcessResult> applied = Kubectl(kubectl, {"apply", "-f", "-"}, manifest.dump());
  if (!applied.ok() || applied->exit_code != 0) {
    std::cerr << "smithers sandbox kube-job: kubectl apply failed: " << Said(applied) << "\n";
    cleanup();
    return 125;
  }
  // Until the Job has succeeded or failed (or the engine stops the task).
  int waited_ms = 0;
  while (!g_stop.load()) {
    Result<base::ProcessResult> got = Kubectl(kubectl, {"get", "job", name, "-o", "json"});
    Json job = got.ok() && got->exit_code == 0
                   ? Json::parse(got->out, nullptr, /*allow_exceptions=*/false)
                   : Json();
    if (job.is_object() && job.contains("status") && job["status"].is_object() &&
        (job["status"].value("succeeded", 0) > 0 || job["status"].value("failed", 0) > 0)) {
      break;
    }
    if (!got.ok() || got->exit_code != 0) {
      std::cerr << "smithers sandbox kube-job: kubectl get job " << name << " failed: " << Said(got)
                << "\n";
      cleanup();
      return 125;
    }
    usleep(waited_ms < 5000 ? 200000 : 1000000);
    waited_ms += waited_ms < 5000 ? 200 : 1000;
  }
  if (g_stop.load()) {
    cleanup();
    return 143;
  }
  Result<base::ProcessResult> logs = Kubectl(kubectl, {"logs", "job/" + name});
  if (logs.ok()) std::cout << logs->out << std::flush;
  int code = 1;
  Result<base::ProcessResult> pods =
      Kubectl(kubectl, {"get", "pods", "-l", selector, "-o", "json"});
  Json list = pods.ok() ? Json::parse(pods->out, nullptr, /*allow_exceptions=*/false) : Json();
  const Json::json_pointer exit_at("/items/0/status/containerStatuses/0/state/terminated/exitCode");
  if (list.is_object() && list.contains(exit_at) && list.at(exit_at).is_number_integer()) {
    code = list.at(exit_at).get<int>();
  }
  cleanup();
  return code;
}

}  // namespace smithers::sandbox
