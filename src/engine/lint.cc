// LintWorkflow: renders a workflow with made-up outputs, running nothing, and
// reports what a reviewer would flag (docs/operations.md "Checking modules
// before promotion").
#include "smithers/lint.h"

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "base/redact.h"
#include "base/text.h"
#include "core/plan.h"
#include "core/task_modes.h"
#include "smithers/engine.h"
#include "smithers/schema.h"

namespace smithers {
namespace {

// What one pass knows, and the report it adds to.
class Linter {
 public:
  Linter(const WorkflowDefinition& wf, const LintOptions& options, LintReport& report)
      : wf_(wf), options_(options), report_(report) {}

  // One pass: renders from no outputs, adding a made-up output for each
  // mounted task that writes one, until a render adds none.
  void Pass(schema::SampleFill fill) {
    Ctx::OutputMap outputs;
    for (int n = 0; n < options_.max_renders; ++n) {
      ++report_.renders;
      Ctx ctx("smithers-check", &report_.input, &outputs, 0);
      Result<Node> root = wf_.render(ctx);
      if (!root.ok()) {
        RenderFailed(outputs, root.status());
        return;
      }
      plan_overlap_ = false;
      render_ids_.clear();
      std::vector<const Node*> mounted;
      Walk(*root, mounted);
      // The plan's own checks (as a run would make them), unless this render
      // already showed the problem that stops it: it stops at the first.
      Result<core::PlanTree> plan =
          core::PlanTree::Build(*root, {}, wf_.outputs, wf_.default_approval_owner);
      if (!plan.ok() && !plan_overlap_) {
        Add(LintSeverity::kError, "plan", nullptr, plan.status().message());
      }
      bool grew = false;
      for (const Node* task : mounted) {
        const TaskSpec& t = task->task;
        auto declared = wf_.outputs.find(t.output);
        if (task->skip || !core::Traits(t.mode).writes_output || declared == wf_.outputs.end()) {
          continue;
        }
        auto [it, inserted] = outputs.try_emplace(Ctx::OutputKey{t.output, task->id});
        if (!inserted) continue;
        it->second[0] = schema::Sample(declared->second, fill);
        grew = true;
      }
      if (!grew) return;
    }
    Add(LintSeverity::kWarning, "render-limit", nullptr,
        "the tree still grew after " + std::to_string(options_.max_renders) +
            " renders; tasks mounted later were not seen");
  }

 private:
  // A prop the module got wrong, or a render that saw only real values, is
  // an error; otherwise a made-up value (a relative path where an absolute
  // one is needed, a string a render parses) may be the cause.
  void RenderFailed(const Ctx::OutputMap& outputs, const Status& status) {
    std::string with;
    if (!outputs.empty()) {
      std::set<std::string> ids;
      for (const auto& [key, rows] : outputs) ids.insert(key.node_id);
      with = "with made-up outputs of " + base::Join(ids) + ": ";
    }
    if (options_.check_components) {
      if (Status props = options_.check_components(report_.input, outputs); !props.ok()) {
        Add(LintSeverity::kError, "render", nullptr, with + props.message());
        return;
      }
    }
    const bool made_up_input = report_.input_generated && !wf_.input_schema.is_null();
    if (outputs.empty() && !made_up_input) {
      Add(LintSeverity::kError, "render", nullptr, status.message());
      return;
    }
    if (outputs.empty()) with = "with the sample input " + report_.input.dump() + ": ";
    Add(LintSeverity::kWarning, "render", nullptr,
        with + status.message() +
            "; what it would mount is not checked (a made-up value may be the cause: pass "
            "--input)");
  }

  void Add(LintSeverity severity, const std::string& code, const Node* node, std::string message) {
    LintFinding f{.severity = severity,
                  .code = code,
                  .node_id = node != nullptr ? node->id : "",
                  .where = node != nullptr ? node->source : "",
                  .message = std::move(message)};
    if (seen_.emplace(f.code, f.node_id, f.where, f.message).second) {
      report_.findings.push_back(std::move(f));
    }
  }

  // Every node as the plan mounts it (a skipped container mounts nothing),
  // the tasks into `mounted`.
  void Walk(const Node& node, std::vector<const Node*>& mounted) {
    if (node.kind == NodeKind::kTask) {
      mounted.push_back(&node);
      if (!node.id.empty() && task_ids_.insert(node.id).second) report_.tasks.push_back(node.id);
      LintTask(node);
      return;
    }
    if (node.kind == NodeKind::kLoop) loops_.push_back(node.id);
    for (const Node& child : node.children) {
      if (child.skip && child.kind != NodeKind::kTask) continue;
      Walk(child, mounted);
    }
    if (node.kind == NodeKind::kLoop) loops_.pop_back();
  }

  void LintTask(const Node& node) {
    if (node.id.empty()) return;  // the plan says so
    CheckUnique(node);
    const TaskSpec& t = node.task;
    if (t.approval) CheckApproval(node, *t.approval, "approval");
    if (t.review && t.sandbox_task && t.sandbox_task->review_diffs &&
        !t.sandbox_task->auto_accept_diffs) {
      CheckApproval(node, *t.review, "review");
    }
    if (t.cache && t.cache->version.empty()) {
      Add(LintSeverity::kWarning, "cache-version", &node,
          "cached without a version: when what the task computes changes, runs reuse the "
          "outputs of the old code; set cachePolicy = { version = \"...\" } and bump it");
    }
    if (t.mode == TaskMode::kAgent && t.timeout_ms <= 0) {
      Add(LintSeverity::kWarning, "agent-timeout", &node,
          "agent task without timeoutMs: an attempt runs until the agent stops or goes silent "
          "for the heartbeat timeout (10 minutes by default)");
    }
    CheckSandbox(node);
    CheckSecrets(node);
  }

  // Ids are unique among the tasks of one render; inside nested loops, per
  // outer loop (as core::PlanTree resolves them, every loop at iteration 0).
  void CheckUnique(const Node& node) {
    std::string key;
    for (size_t i = 0; i + 1 < loops_.size(); ++i) key += loops_[i] + "\x1f";
    key += node.id;
    auto [it, inserted] = render_ids_.try_emplace(key, &node);
    if (inserted) return;
    plan_overlap_ = true;
    const Node& first = *it->second;
    Add(LintSeverity::kError, "duplicate-id", &node,
        "task id \"" + node.id + "\" is used twice in one render" +
            (first.source.empty() && node.source.empty()
                 ? std::string()
                 : ": at " + first.source + " and at " + node.source) +
            "; a run refuses the tree (ids key every output row)");
  }

  void CheckApproval(const Node& node, const ApprovalSpec& a, const std::string& what) {
    const std::string owner = a.owner.empty() ? wf_.default_approval_owner : a.owner;
    if (owner.empty()) {
      if (what == "approval") plan_overlap_ = true;
      Add(LintSeverity::kError, "approval-owner", &node,
          "the " + what +
              " names no owner and the workflow declares no defaultApprovalOwner: nobody may "
              "decide it but an override");
    }
    // (escalateAfterMs without a fallbackOwner is refused by the render.)
    if (a.fallback_owner.empty()) {
      if (a.allowed_users.empty() && a.allowed_scopes.empty()) {
        Add(LintSeverity::kWarning, "approval-fallback-owner", &node,
            "the " + what + " names no fallbackOwner (nor allowedUsers or allowedScopes): when " +
                (owner.empty() ? std::string("its owner") : owner) +
                " does not decide, the run waits for ever; set fallbackOwner and "
                "escalateAfterMs");
      }
    } else if (a.escalate_after_ms <= 0) {
      Add(LintSeverity::kWarning, "approval-escalation", &node,
          "the " + what + "'s fallbackOwner " + a.fallback_owner +
              " is never asked: escalateAfterMs is not set");
    }
  }

  void CheckSandbox(const Node& node) {
    if (!options_.require_sandbox) return;
    const TaskSpec& t = node.task;
    if (t.mode == TaskMode::kCommand && !t.command.sandbox) {
      Add(LintSeverity::kError, "sandbox-required", &node,
          "command task without a sandbox, and processes must run confined (--require-sandbox): "
          "it would fail with SANDBOX_REQUIRED; set sandbox = true on it or on the Workflow");
    }
    if (t.mode == TaskMode::kAgent && options_.agent_unconfined) {
      const Json chain = t.agent.is_array() ? t.agent : Json::array({t.agent});
      for (const Json& agent : chain) {
        std::string why = options_.agent_unconfined(agent);
        if (why.empty()) continue;
        Add(LintSeverity::kError, "sandbox-required", &node,
            why +
                ", and processes must run confined (--require-sandbox): it would fail with "
                "SANDBOX_REQUIRED");
      }
    }
  }

  // Literals that look like keys or tokens (base::LooksSecret) where a
  // module writes text a task uses: they end up in frames, the cache key and
  // the child's environment. The message never holds the value.
  void CheckSecrets(const Node& node) {
    const TaskSpec& t = node.task;
    std::vector<std::string> where;
    if (!t.prompt.empty() && base::LooksSecret(t.prompt)) where.emplace_back("the prompt");
    if (t.mode == TaskMode::kCommand) {
      for (size_t i = 0; i < t.command.argv.size(); ++i) {
        if (base::LooksSecret(t.command.argv[i])) {
          where.push_back("command argument " + std::to_string(i));
        }
      }
      for (const auto& [name, value] : t.command.env) {
        if (base::LooksSecret(value)) where.push_back("env " + name);
      }
    }
    if (t.mode == TaskMode::kAgent) {
      if (auto path = base::FindSecretShaped(t.agent)) where.push_back("the agent's " + *path);
    }
    if (t.mode == TaskMode::kStatic) {
      if (auto path = base::FindSecretShaped(t.value)) where.push_back("the value's " + *path);
    }
    if (t.sandbox_task) {
      for (const auto& [name, value] : t.sandbox_task->env) {
        if (base::LooksSecret(value)) where.push_back("env " + name);
      }
      if (auto path = base::FindSecretShaped(t.sandbox_task->input)) {
        where.push_back("the input's " + *path);
      }
    }
    for (const std::string& w : where) {
      Add(LintSeverity::kError, "secret-literal", &node,
          w + " holds what looks like a secret (a key or token) written into the module; pass "
              "it as a reference, env = { NAME = { secret = \"env:VAR\" } } (docs/engine.md "
              "\"Environment and secrets\")");
    }
  }

  const WorkflowDefinition& wf_;
  const LintOptions& options_;
  LintReport& report_;
  std::set<std::tuple<std::string, std::string, std::string, std::string>> seen_;
  std::set<std::string> task_ids_;
  std::map<std::string, const Node*> render_ids_;  // this render's task ids (CheckUnique)
  std::vector<std::string> loops_;                 // the enclosing loops' ids, outermost first
  bool plan_overlap_ = false;                      // this render showed what stops the plan
};

}  // namespace

const char* LintSeverityName(LintSeverity severity) {
  return severity == LintSeverity::kError ? "error" : "warn";
}

bool LintReport::HasErrors() const {
  for (const LintFinding& f : findings) {
    if (f.severity == LintSeverity::kError) return true;
  }
  return false;
}

LintReport LintWorkflow(const WorkflowDefinition& workflow, const LintOptions& options) {
  LintReport report;
  auto add = [&report](LintSeverity severity, const char* code, const std::string& message) {
    report.findings.push_back({.severity = severity, .code = code, .message = message});
  };
  if (Status schemas = CheckWorkflow(workflow, nullptr); !schemas.ok()) {
    add(LintSeverity::kError, "schema", schemas.message());
    return report;
  }
  report.input = options.input;
  if (report.input.is_null()) {
    report.input_generated = true;
    report.input = workflow.input_schema.is_null()
                       ? Json::object()
                       : schema::Sample(workflow.input_schema, schema::SampleFill::kLeast);
    if (Status fits = CheckRunInput(workflow, report.input); !fits.ok()) {
      add(LintSeverity::kWarning, "sample-input",
          "the sample input made from the input schema does not fit it (" + fits.message() +
              "); renders use it anyway: pass --input");
    }
  } else if (Status fits = CheckRunInput(workflow, report.input); !fits.ok()) {
    add(LintSeverity::kError, "input", fits.message());
    return report;
  }
  Linter linter(workflow, options, report);
  linter.Pass(schema::SampleFill::kLeast);
  linter.Pass(schema::SampleFill::kMost);
  return report;
}

}  // namespace smithers
