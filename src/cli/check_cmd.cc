// `smithers check MODULE... [--input JSON] [--json]`: the pre-promotion gate
// for workflow modules (docs/operations.md "Checking modules before
// promotion"). Loads each module, lints it (LintWorkflow: renders with made-up
// outputs, nothing runs) and reports; no database is opened.
#include <sys/stat.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "agents/agent_executor.h"
#include "cli/commands.h"
#include "gateway/catalog.h"
#include "gateway/cron.h"
#include "script/lua_workflow.h"
#include "smithers/json.h"
#include "smithers/lint.h"

namespace smithers::cli {
namespace {

// The modules the arguments name: a file as it is; a folder's *.lua files,
// sorted (every workflow a Gateway with `--workflows FOLDER` would list).
Result<std::vector<std::string>> ModulePaths(const std::vector<std::string>& args) {
  std::vector<std::string> paths;
  for (const std::string& arg : args) {
    struct stat st {};
    if (stat(arg.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      paths.push_back(arg);  // a file, or one that cannot load (reported as such)
      continue;
    }
    SMITHERS_ASSIGN_OR_RETURN(std::vector<gateway::ModuleFile> found,
                              gateway::ListModuleFiles(arg));
    if (found.empty()) return InvalidArgumentError("no *.lua module in folder \"" + arg + "\"");
    for (gateway::ModuleFile& f : found) paths.push_back(std::move(f.path));
  }
  return paths;
}

// One module's outcome.
struct Checked {
  std::string module;  // as named on the command line (or folder/name.lua)
  bool loaded = false;
  std::string workflow;
  std::vector<std::string> siblings;
  LintReport report;  // with loaded = false: the one `load` finding
};

Checked CheckOne(const std::string& path, const Json& input, bool require_sandbox,
                 bool restricted) {
  Checked c{.module = path};
  Result<std::unique_ptr<script::LuaWorkflow>> module =
      script::LoadWorkflowModule(path, {.restricted = restricted});
  if (!module.ok()) {
    c.report.findings.push_back({.code = "load", .message = module.status().message()});
    return c;
  }
  c.loaded = true;
  script::LuaWorkflow& lua = **module;
  c.workflow = lua.definition().name;
  for (const auto& [name, source] : lua.siblings()) c.siblings.push_back(name);
  c.report = LintWorkflow(
      lua.definition(), {.input = input,
                         .require_sandbox = require_sandbox,
                         .agent_unconfined = agents::UnconfinedReason,
                         .check_components = [&lua](const Json& in, const Ctx::OutputMap& outputs) {
                           return lua.CheckComponents(in, &outputs);
                         }});
  // A schedule the Gateway could not read leaves the workflow unlaunchable there.
  if (const auto& schedule = lua.schedule()) {
    if (auto cron = gateway::ParseCron(schedule->cron, schedule->time_zone); !cron.ok()) {
      c.report.findings.push_back(
          {.code = "schedule", .message = "schedule: " + cron.status().message()});
    }
  }
  return c;
}

int Count(const LintReport& r, LintSeverity severity) {
  return static_cast<int>(
      std::count_if(r.findings.begin(), r.findings.end(),
                    [&](const LintFinding& f) { return f.severity == severity; }));
}

Json FindingJson(const LintFinding& f) {
  return {{"severity", LintSeverityName(f.severity)},
          {"code", f.code},
          {"node", f.node_id},
          {"where", f.where},
          {"message", f.message}};
}

Json CheckedJson(const Checked& c) {
  Json findings = Json::array();
  for (const LintFinding& f : c.report.findings) findings.push_back(FindingJson(f));
  Json out = {{"module", c.module},
              {"loaded", c.loaded},
              {"findings", std::move(findings)},
              {"errors", Count(c.report, LintSeverity::kError)},
              {"warnings", Count(c.report, LintSeverity::kWarning)}};
  if (c.loaded) {
    out["workflow"] = c.workflow;
    out["siblings"] = c.siblings;
    out["input"] = c.report.input;
    out["inputGenerated"] = c.report.input_generated;
    out["renders"] = c.report.renders;
    out["tasks"] = c.report.tasks;
  }
  return out;
}

// "MODULE: error: node ID: message (flow.lua:12)", one line per finding.
void PrintChecked(const Checked& c) {
  for (const LintFinding& f : c.report.findings) {
    std::cout << c.module << ": " << LintSeverityName(f.severity) << ": ";
    if (!c.loaded) std::cout << "cannot load: ";
    if (!f.node_id.empty()) std::cout << "node " << f.node_id << ": ";
    std::cout << f.message;
    if (!f.where.empty()) std::cout << " (" << f.where << ")";
    std::cout << "\n";
  }
  if (c.loaded && c.report.findings.empty()) {
    const size_t tasks = c.report.tasks.size();
    std::cout << c.module << ": ok (" << tasks << (tasks == 1 ? " task, " : " tasks, ")
              << c.report.renders << " renders)\n";
  }
}

}  // namespace

CheckCommands::CheckCommands(CLI::App& app) {
  check_cmd_ = app.add_subcommand(
      "check",
      "Check workflow modules before promotion: load each (and its siblings), validate its "
      "schemas, render it with a sample input and then with made-up outputs until the tree "
      "stops growing (nothing runs, no database is opened), and report problems");
  check_cmd_
      ->add_option("modules", modules_,
                   "Module files (.lua), or folders: every *.lua in one, as a Gateway lists them")
      ->required();
  check_cmd_->add_option("-i,--input", input_,
                         "The run input as a JSON object, or - for stdin (default: a sample "
                         "made from each module's input schema)");
  check_cmd_->add_flag("--require-sandbox", require_sandbox_,
                       "Processes must run confined, as with `up --require-sandbox`: a command "
                       "task or CLI agent without a sandbox, or unisolatedTools, is an error");
  check_cmd_->add_flag("--restricted", restricted_,
                       "Load the modules with the restricted Lua library, as a Gateway does");
  check_cmd_->add_flag("--json", json_, "Print one JSON document on stdout");
  check_cmd_->footer(
      "Errors: duplicate task ids, an approval (or review) without an owner, secret-shaped "
      "literals in prompts, commands, env, agent settings or static values, a command task or "
      "CLI agent without a sandbox under --require-sandbox, an unknown prop, and a schema, "
      "input, plan or schedule that fails. Warnings: an approval without fallbackOwner (nor "
      "allowedUsers), a fallbackOwner never asked (no escalateAfterMs), cache without "
      "version, an agent task without timeoutMs, a render that fails with made-up values "
      "(pass --input). Exit codes: 0 no error; 1 an error; 4 bad usage or a module that "
      "cannot load (docs/operations.md \"Checking modules before promotion\").");
}

int CheckCommands::Run() {
  if (!*check_cmd_) return -1;
  Json input = nullptr;
  if (!input_.empty()) {
    Result<Json> parsed = ParseInputArg(input_);
    if (!parsed.ok()) return Fail(kExitBadInput, parsed.status().message());
    input = *parsed;
  }
  Result<std::vector<std::string>> paths = ModulePaths(modules_);
  if (!paths.ok()) return Fail(kExitBadInput, paths.status().message());
  int errors = 0, warnings = 0, unloadable = 0;
  Json modules = Json::array();
  for (const std::string& path : *paths) {
    Checked c = CheckOne(path, input, require_sandbox_, restricted_);
    if (!c.loaded) ++unloadable;
    errors += Count(c.report, LintSeverity::kError);
    warnings += Count(c.report, LintSeverity::kWarning);
    if (json_) {
      modules.push_back(CheckedJson(c));
    } else {
      PrintChecked(c);
    }
  }
  if (json_) {
    std::cout << Json{{"ok", errors == 0},
                      {"modules", std::move(modules)},
                      {"counts",
                       {{"modules", paths->size()},
                        {"errors", errors},
                        {"warnings", warnings},
                        {"unloadable", unloadable}}}}
                     .dump(2)
              << std::endl;
  } else {
    std::cout << paths->size() << (paths->size() == 1 ? " module" : " modules") << ", " << errors
              << (errors == 1 ? " error" : " errors") << ", " << warnings
              << (warnings == 1 ? " warning" : " warnings") << "\n";
  }
  if (unloadable > 0) return kExitBadInput;
  return errors > 0 ? kExitFailed : kExitOk;
}

}  // namespace smithers::cli
