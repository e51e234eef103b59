// Embedding Smithers in a C++ program: the workflow of examples/hello.lua,
// written with the C++ API instead of a Lua module.
//
//   embed_example [DB_PATH [RUN_ID [NAME]]]
//
// DB_PATH defaults to a fresh file under $TMPDIR. With a RUN_ID, a second
// invocation on the same database resumes that run instead of starting a new
// one (a finished run is not executed again: its stored outputs are printed).
// Prints {"runId", "status", "outputs"} as JSON on stdout and exits with the
// same codes as `smithers up`: 0 finished, 1 failed, 2 cancelled, 3 waiting,
// 4 bad usage.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "smithers/engine.h"
#include "smithers/schema.h"
#include "smithers/store.h"
#include "smithers/workflow.h"

namespace {

namespace sm = smithers;
namespace z = smithers::schema;

// The workflow definition: declared output schemas plus a render function.
sm::WorkflowDefinition HelloWorkflow() {
  sm::WorkflowDefinition def;
  def.name = "hello";
  // Output schemas, as `smithers.outputs { ... }` declares them in Lua. Every
  // task result is validated against its schema before it is stored.
  def.outputs["greeting"] = z::Object({{"message", z::String()}});
  def.outputs["length"] = z::Object({{"n", z::Integer()}});
  // The run's input must be {"name": <string>}.
  def.input_schema = z::Object({{"name", z::String()}});
  // A C++ workflow has no module file; source_hash names this version of the
  // code, and resuming a run started with another hash is refused.
  def.source_hash = "examples/embed.cc v1";

  // The render function: a pure function of ctx, called again whenever an
  // output it read changes. It reads only ctx, never outside state.
  def.render = [](const sm::Ctx& ctx) -> sm::Result<sm::Node> {
    std::vector<sm::Node> kids;
    // A static task: its value is the output, known at render time.
    std::string name = ctx.input().value("name", "");
    kids.push_back(sm::StaticTask("greet", "greeting", {{"message", "Hello, " + name}}));

    // OutputMaybe records that this render depends on greet's output, so the
    // engine renders again once it is stored; until then it is nullptr and the
    // compute task is not mounted (the same as `g and Task {...} or nil`).
    if (const sm::Json* g = ctx.OutputMaybe("greeting", "greet")) {
      // Capture a copy: the compute function runs after this render returns.
      std::string message = g->at("message").get<std::string>();
      kids.push_back(sm::ComputeTask("measure", "length",
                                     [message](const sm::ComputeContext&) -> sm::Result<sm::Json> {
                                       return sm::Json{{"n", static_cast<int64_t>(message.size())}};
                                     }));
    }
    return sm::Workflow("hello", std::move(kids));
  };
  return def;
}

std::string DefaultDbPath() {
  const char* tmp = std::getenv("TMPDIR");
  std::filesystem::path dir = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  return (dir / ("smithers-embed-" + std::to_string(getpid()) + ".db")).string();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 4 ||
      (argc > 1 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help"))) {
    std::cerr << "usage: " << argv[0] << " [DB_PATH [RUN_ID [NAME]]]\n";
    return 4;
  }
  std::string db_path = argc > 1 ? argv[1] : DefaultDbPath();
  std::string run_id = argc > 2 ? argv[2] : "";
  std::string name = argc > 3 ? argv[3] : "world";

  sm::WorkflowDefinition def = HelloWorkflow();

  // Open (or create) the SQLite database; the engine's tables are created or
  // migrated here. FULL synchronous is the durable default.
  sm::Result<std::unique_ptr<sm::Store>> store = sm::OpenSqliteStore({.path = db_path});
  if (!store.ok()) {
    std::cerr << "embed_example: " << store.status().message() << "\n";
    return 1;
  }

  sm::RunOptions opts;
  opts.run_id = run_id;  // "" = a new UUID
  opts.input = {{"name", name}};
  // A run that already exists is resumed: tasks whose outputs are stored are
  // never executed again. (Resuming requires the same input and source_hash.)
  if (!run_id.empty() && (*store)->GetRun(run_id).ok()) opts.resume = true;
  // Every committed event can be observed, e.g. for progress or logging.
  opts.on_event = [](const sm::EventRecord& e) {
    std::cerr << "event " << e.seq << " " << e.type << "\n";
  };

  sm::Result<sm::RunResult> result = sm::RunWorkflow(def, **store, opts);
  if (!result.ok()) {
    // Refused before anything ran: bad input, a resume that does not match...
    std::cerr << "embed_example: " << result.status().message() << "\n";
    return 4;
  }
  sm::Json out = {{"runId", result->run_id},
                  {"status", result->status},
                  {"outputs", result->outputs},
                  {"resumed", opts.resume}};
  if (!result->error.is_null()) out["error"] = result->error;
  std::cout << out.dump(2) << std::endl;
  if (run_id.empty() && argc <= 1) std::cerr << "database: " << db_path << "\n";
  return result->ExitCode();
}
