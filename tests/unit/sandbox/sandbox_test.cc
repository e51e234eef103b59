// The sandbox runtimes' argv and their fail-closed paths; what a confined
// process can do is tested end to end (tests/e2e/sandbox_test.py).
#include "sandbox/sandbox.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "sandbox/runtimes.h"

namespace smithers::sandbox {
namespace {

namespace fs = std::filesystem;

// Whether `v` holds `want` as consecutive elements.
bool HasRun(const std::vector<std::string>& v, const std::vector<std::string>& want) {
  return std::search(v.begin(), v.end(), want.begin(), want.end()) != v.end();
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/smithers_sandbox_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    ws_ = tmpl;
    fs::create_directories(ws_ + "/.smithers");
    std::ofstream(ws_ + "/smithers.db") << "db";
  }
  void TearDown() override { fs::remove_all(ws_); }
  std::string ws_;
};

TEST_F(SandboxTest, BubblewrapConfinesTheWorkspaceAndMasksTheEngineState) {
  Result<std::vector<std::string>> argv =
      ConfinedArgv({.workspace = ws_, .hidden_paths = {ws_ + "/smithers.db"}}, {"make", "test"});
  ASSERT_TRUE(argv.ok()) << argv.status().ToString();
  const std::vector<std::string>& v = *argv;
  EXPECT_EQ(v.front(), "bwrap");
  EXPECT_TRUE(HasRun(v, {"--unshare-user", "--uid", "65534", "--gid", "65534"}));
  EXPECT_TRUE(HasRun(v, {"--cap-drop", "ALL"}));
  EXPECT_TRUE(HasRun(v, {"--unshare-net"}));
  EXPECT_TRUE(HasRun(v, {"--die-with-parent"}));
  EXPECT_TRUE(HasRun(v, {"--bind", ws_, ws_}));
  EXPECT_TRUE(HasRun(v, {"--tmpfs", "/tmp"}));
  EXPECT_TRUE(HasRun(v, {"--ro-bind", "/dev/null", ws_ + "/smithers.db"}));
  EXPECT_TRUE(HasRun(v, {"--tmpfs", ws_ + "/.smithers", "--remount-ro", ws_ + "/.smithers"}));
  EXPECT_TRUE(HasRun(v, {"--remount-ro", "/", "--chdir", ws_, "--", "make", "test"}));
  EXPECT_EQ(std::vector<std::string>(v.end() - 2, v.end()),
            (std::vector<std::string>{"make", "test"}));
  // Only the workspace is bound writable.
  EXPECT_EQ(std::count(v.begin(), v.end(), "--bind"), 1);
}

TEST_F(SandboxTest, NetworkOnlyWhenAllowedAndTheProgramAsGiven) {
  Result<std::vector<std::string>> argv =
      ConfinedArgv({.allow_network = true, .workspace = ws_, .program = "/opt/bwrap"}, {"true"});
  ASSERT_TRUE(argv.ok()) << argv.status().ToString();
  EXPECT_EQ(argv->front(), "/opt/bwrap");
  EXPECT_FALSE(HasRun(*argv, {"--unshare-net"}));
}

TEST_F(SandboxTest, UnknownRuntimesAndBadRequestsAreErrors) {
  Result<std::vector<std::string>> unknown =
      ConfinedArgv({.runtime = "chroot", .workspace = ws_}, {"true"});
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(
      unknown.status().message().find(
          "unknown sandbox runtime \"chroot\" (known: bubblewrap, podman, docker, kubernetes)"),
      std::string::npos)
      << unknown.status().message();
  EXPECT_EQ(ConfinedArgv({.workspace = "relative/dir"}, {"true"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ConfinedArgv({.workspace = ws_}, {}).status().code(), StatusCode::kInvalidArgument);
  // A workspace the sandbox would have to make writable over the system.
  for (const char* bad : {"/", "/usr", "/etc/", "/usr/local/src", "/proc/self", "/run"}) {
    Result<std::vector<std::string>> r = ConfinedArgv({.workspace = bad}, {"true"});
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("system folder"), std::string::npos) << bad;
  }
  EXPECT_TRUE(ConfinedArgv({.workspace = "/usrdata"}, {"true"}).ok());
  EXPECT_EQ(RuntimeNames(),
            (std::vector<std::string>{"bubblewrap", "podman", "docker", "kubernetes"}));
  EXPECT_EQ(Usable("chroot").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ConfineTask({.runtime = "chroot"}, ws_, {}, {"true"}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SandboxTest, AProgramOutsideWhatBubblewrapShowsIsRefused) {
  EXPECT_TRUE(ConfinedArgv({.workspace = ws_}, {"/bin/sh"}).ok());  // /bin -> /usr/bin
  EXPECT_TRUE(ConfinedArgv({.workspace = ws_}, {ws_ + "/build.sh"}).ok());
  Result<std::vector<std::string>> r = ConfinedArgv({.workspace = ws_}, {"/root/bin/tool"});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(
      r.status().message().find("the program \"/root/bin/tool\" is outside what the sandbox shows"),
      std::string::npos)
      << r.status().message();
}

TEST_F(SandboxTest, AContainerRunsItsImageConfined) {
  for (const char* runtime : {"podman", "docker"}) {
    Result<std::vector<std::string>> argv =
        ConfinedArgv({.runtime = runtime,
                      .workspace = ws_,
                      .hidden_paths = {ws_ + "/smithers.db"},
                      .limits = {.memory_bytes = 64 << 20, .pids = 32, .cpus = 0.5},
                      .image = "localhost/tools:1",
                      .name = "smithers-sandbox-0123",
                      .env_names = {"API_TOKEN", "LANG"}},
                     {"make", "test"});
    ASSERT_TRUE(argv.ok()) << argv.status().ToString();
    const std::vector<std::string>& v = *argv;
    EXPECT_EQ(std::vector<std::string>(v.begin(), v.begin() + 6),
              (std::vector<std::string>{runtime, "run", "--rm", "--pull=never", "--name",
                                        "smithers-sandbox-0123"}));
    EXPECT_TRUE(HasRun(v, {"--network", "none"}));
    EXPECT_TRUE(HasRun(v, {"--read-only"}));
    EXPECT_TRUE(HasRun(v, {"--cap-drop", "ALL"}));
    EXPECT_TRUE(HasRun(v, {"--security-opt", "no-new-privileges"}));
    EXPECT_TRUE(HasRun(v, {"--user", "65534:65534"}));
    EXPECT_TRUE(HasRun(v, {"--memory", "67108864", "--memory-swap", "67108864"}));
    EXPECT_TRUE(HasRun(v, {"--pids-limit", "32"}));
    EXPECT_TRUE(HasRun(v, {"--cpus", "0.5"}));
    EXPECT_TRUE(HasRun(v, {"--mount", "type=bind,source=" + ws_ + ",destination=" + ws_}));
    // podman would copy what the tmpfs hides into it.
    EXPECT_TRUE(
        HasRun(v, {"--mount", "type=tmpfs,destination=" + ws_ + "/.smithers" +
                                  (std::string(runtime) == "podman" ? ",notmpcopyup" : "")}));
    EXPECT_TRUE(HasRun(
        v, {"--mount", "type=bind,source=/dev/null,destination=" + ws_ + "/smithers.db,readonly"}));
    EXPECT_TRUE(HasRun(v, {"--workdir", ws_}));
    // Variables by name only: their values never reach the argv.
    EXPECT_TRUE(HasRun(v, {"--env=API_TOKEN", "--env=LANG"}));
    EXPECT_EQ(std::vector<std::string>(v.end() - 3, v.end()),
              (std::vector<std::string>{"localhost/tools:1", "make", "test"}));
    Result<std::vector<std::string>> open = ConfinedArgv(
        {.runtime = runtime, .allow_network = true, .workspace = ws_, .image = "x"}, {"true"});
    ASSERT_TRUE(open.ok());
    EXPECT_FALSE(HasRun(*open, {"--network", "none"}));
    EXPECT_FALSE(HasRun(*open, {"--memory"}));
  }
  // An image is required by a container runtime and refused by the others.
  Result<std::vector<std::string>> none =
      ConfinedArgv({.runtime = "podman", .workspace = ws_}, {"true"});
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("the podman runtime needs an image"), std::string::npos);
  Result<std::vector<std::string>> image = ConfinedArgv({.workspace = ws_, .image = "x"}, {"true"});
  EXPECT_EQ(image.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(image.status().message().find("takes no image"), std::string::npos);
  // An image that is not a reference would be read as an option.
  for (const char* bad : {"--privileged", "-v", "img name", "img;rm"}) {
    Result<std::vector<std::string>> r =
        ConfinedArgv({.runtime = "docker", .workspace = ws_, .image = bad}, {"true"});
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("is not an image reference"), std::string::npos) << bad;
  }
  EXPECT_TRUE(ConfinedArgv({.runtime = "docker",
                            .workspace = ws_,
                            .image = "registry.local:5000/team/img:1.2@sha256:ab12"},
                           {"true"})
                  .ok());
  // A system folder is no container's workspace either; a comma would split --mount.
  EXPECT_EQ(ConfinedArgv({.runtime = "docker", .workspace = "/etc", .image = "x"}, {"true"})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ConfinedArgv({.runtime = "docker", .workspace = ws_ + "/a,b", .image = "x"}, {"true"})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SandboxTest, AContainerPublishesItsPortsAndShowsItsVolumes) {
  Result<std::vector<std::string>> argv =
      ConfinedArgv({.runtime = "podman",
                    .allow_network = true,
                    .workspace = ws_,
                    .image = "x",
                    .binds = {{"/srv/cache", "/cache"}},
                    .ro_binds = {{"/srv/data", "/data"}},
                    .ports = {"127.0.0.1:8080:80", "0.0.0.0:9000:9000"}},
                   {"true"});
  ASSERT_TRUE(argv.ok()) << argv.status().ToString();
  EXPECT_TRUE(HasRun(*argv, {"--publish", "127.0.0.1:8080:80", "--publish", "0.0.0.0:9000:9000"}));
  EXPECT_TRUE(HasRun(*argv, {"--mount", "type=bind,source=/srv/cache,destination=/cache"}));
  EXPECT_TRUE(HasRun(*argv, {"--mount", "type=bind,source=/srv/data,destination=/data,readonly"}));
}

// A volume is checked before any runtime is probed: nothing starts.
TEST_F(SandboxTest, VolumesThatWouldShowTheEngineStateAreRefused) {
  fs::create_directories(ws_ + "/data");
  const std::vector<std::string> hidden = {ws_ + "/smithers.db"};
  struct Case {
    SandboxSpec::Volume volume;
    const char* why;
  };
  const Case cases[] = {
      {{.host = ws_, .container = "/w"}, "holds the engine's database"},
      {{.host = ws_ + "/smithers.db", .container = "/db"}, "holds the engine's database"},
      {{.host = ws_ + "/.smithers", .container = "/s"}, "state folder"},
      {{.host = ws_ + "/missing", .container = "/m"}, "does not exist"},
      {{.host = ws_ + "/data", .container = "/usr/lib"}, "system folder"},
      {{.host = ws_ + "/data", .container = "/run/smithers/x"}, "system folder"},
      {{.host = ws_ + "/data", .container = "/"}, "system folder"},
      {{.host = "data", .container = "/d"}, "absolute"},
  };
  for (const Case& c : cases) {
    SandboxSpec spec{.runtime = "bubblewrap", .volumes = {c.volume}};
    Result<ConfinedProcess> p = ConfineTask(spec, ws_ + "/data", hidden, {"true"});
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << c.volume.host;
    EXPECT_NE(p.status().message().find(c.why), std::string::npos) << p.status().message();
  }
  // Ports need a container runtime with its network.
  SandboxSpec ports{.runtime = "bubblewrap", .allow_network = true, .ports = {"127.0.0.1:80:80"}};
  EXPECT_EQ(ConfineTask(ports, ws_ + "/data", hidden, {"true"}).status().code(),
            StatusCode::kInvalidArgument);
}

// The kubernetes runtime's Job: non-root, read-only root, no capabilities,
// no service-account token, the limits as resources, the environment by
// reference to a Secret (never a value), and a NetworkPolicy denying all
// traffic unless allowNetwork.
TEST_F(SandboxTest, AKubernetesJobIsConfinedAndNamesItsSecretsByReference) {
  Confinement c{.runtime = "kubernetes",
                .workspace = ws_,
                .program = "/opt/kube/kubectl",
                .limits = {.memory_bytes = 64 << 20, .cpus = 0.5},
                .image = "registry.local/tools:1",
                .name = "smithers-sandbox-42-AB",
                .env_names = {"API_TOKEN"}};
  Result<std::vector<std::string>> argv = ConfinedArgv(c, {"make", "test"});
  ASSERT_TRUE(argv.ok()) << argv.status().ToString();
  ASSERT_EQ(argv->size(), 7u);
  EXPECT_EQ(std::vector<std::string>(argv->begin() + 1, argv->begin() + 6),
            (std::vector<std::string>{"sandbox", "kube-job", "--kubectl", "/opt/kube/kubectl",
                                      "--manifest"}));
  Json m = Json::parse((*argv)[6]);
  EXPECT_EQ(m, KubernetesManifest(c, {"make", "test"}));
  ASSERT_EQ(m["items"].size(), 2u);
  const Json& policy = m["items"][0];
  const Json& job = m["items"][1];
  EXPECT_EQ(policy["kind"], "NetworkPolicy");
  EXPECT_EQ(policy["spec"]["policyTypes"], (Json{"Ingress", "Egress"}));
  EXPECT_EQ(policy["spec"]["egress"], Json::array());
  EXPECT_EQ(policy["spec"]["ingress"], Json::array());
  EXPECT_EQ(policy["spec"]["podSelector"]["matchLabels"]["smithers.sh/job"],
            "smithers-sandbox-42-ab");
  EXPECT_EQ(job["kind"], "Job");
  EXPECT_EQ(job["metadata"]["name"], "smithers-sandbox-42-ab");
  EXPECT_EQ(job["spec"]["backoffLimit"], 0);
  const Json& pod = job["spec"]["template"]["spec"];
  EXPECT_EQ(pod["automountServiceAccountToken"], false);
  EXPECT_EQ(pod["hostNetwork"], false);
  EXPECT_EQ(pod["restartPolicy"], "Never");
  EXPECT_EQ(pod["securityContext"]["runAsNonRoot"], true);
  EXPECT_EQ(pod["securityContext"]["runAsUser"], 65534);
  ASSERT_EQ(pod["containers"].size(), 1u);
  const Json& ct = pod["containers"][0];
  EXPECT_EQ(ct["image"], "registry.local/tools:1");
  EXPECT_EQ(ct["imagePullPolicy"], "Never");
  EXPECT_EQ(ct["command"], (Json{"make", "test"}));
  EXPECT_EQ(ct["workingDir"], ws_);
  EXPECT_EQ(ct["securityContext"]["readOnlyRootFilesystem"], true);
  EXPECT_EQ(ct["securityContext"]["allowPrivilegeEscalation"], false);
  EXPECT_EQ(ct["securityContext"]["capabilities"]["drop"], (Json{"ALL"}));
  EXPECT_EQ(ct["resources"]["limits"], (Json{{"memory", "67108864"}, {"cpu", "500m"}}));
  EXPECT_EQ(
      ct["env"],
      (Json{
          {{"name", "API_TOKEN"},
           {"valueFrom",
            {{"secretKeyRef", {{"name", "smithers-sandbox-42-ab-env"}, {"key", "API_TOKEN"}}}}}}}));
  // With allowNetwork, egress is open (one empty rule); ingress stays shut.
  c.allow_network = true;
  Json open = KubernetesManifest(c, {"true"});
  EXPECT_EQ(open["items"][0]["spec"]["egress"], Json::array({Json::object()}));
  EXPECT_EQ(open["items"][0]["spec"]["ingress"], Json::array());
  // What a pod cannot do is refused, never ignored.
  Confinement pids = c;
  pids.limits.pids = 10;
  EXPECT_NE(ConfinedArgv(pids, {"true"}).status().message().find("pidsLimit"), std::string::npos);
  Confinement ports = c;
  ports.ports = {"127.0.0.1:80:80"};
  EXPECT_EQ(ConfinedArgv(ports, {"true"}).status().code(), StatusCode::kInvalidArgument);
  Confinement binds = c;
  binds.ro_binds = {{"/srv", "/srv"}};
  EXPECT_NE(ConfinedArgv(binds, {"true"}).status().message().find("shows no host paths"),
            std::string::npos);
  Confinement no_image = c;
  no_image.image.clear();
  EXPECT_EQ(ConfinedArgv(no_image, {"true"}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SandboxTest, AContainerEngineThatIsMissingIsUnusableAndRunsNothing) {
  Status s = Usable("docker", ws_ + "/no-such-docker", "localhost/tools:1");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("the docker sandbox cannot start"), std::string::npos) << s.message();
}

TEST_F(SandboxTest, ARuntimeThatCannotStartIsUnusable) {
  Status s = Usable("bubblewrap", ws_ + "/no-such-bwrap");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("cannot start"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace smithers::sandbox
