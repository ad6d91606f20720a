// Hearth plan module: desired vs observed vs last-applied, the ordered plan,
// and the executor that applies it.
//
// The cycle (the one path everything follows):
//   1. Each provider turns the Lab into desired Resources (pure).
//   2. Each provider Observes the real world for those resources (read-only).
//   3. ComputePlan diffs desired against observed and last-applied (pure) and
//      orders the actions by dependency.
//   4. ApplyPlan runs the actions through the providers, independent ones in
//      parallel up to a bound; a failed action skips everything that depends
//      on it; every completed action is recorded in the state store at once.
//
// Resources are keyed by stable ids "kind.name" (never list positions), and
// compared through flattened, canonical string fields, so a re-plan after a
// successful apply is empty.
//
// This module never includes a provider: providers implement Provider and are
// added to a Registry by src/providers/providers.h (one explicit list).
//
// Thread-safety: ComputePlan and rendering are pure and thread-safe.
// Provider::Apply may be called concurrently for different actions and must
// be safe for that. A Registry is not modified after setup.
#ifndef HEARTH_PLAN_PLAN_H_
#define HEARTH_PLAN_PLAN_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/common.h"
#include "spec/spec.h"
#include "state/state.h"

namespace hearth::plan {

// Flattened canonical attributes: "ports[0]" -> "5433/tcp".
using Fields = std::map<std::string, std::string>;

struct Resource {
  std::string kind;      // "service", "network", "volume", ...
  std::string name;      // unique within kind
  std::string provider;  // name of the owning provider
  Fields fields;
  std::vector<std::string> depends_on;  // ids of resources this one needs first
  // Fields whose change cannot be applied in place (delete + create).
  std::set<std::string> force_new;
  std::string Id() const { return kind + "." + name; }
};

// What a provider saw. A resource the provider cannot observe is absent from
// the map (unknown); one it looked for and did not find has exists = false.
struct ObservedResource {
  bool exists = false;
  Fields fields;  // only the fields the provider can read back
};
using Observed = std::map<std::string, ObservedResource>;
using Applied = std::map<std::string, state::AppliedResource>;

enum class ActionType { kNoop, kCreate, kUpdate, kReplace, kDelete };
std::string_view ActionSymbol(ActionType t);  // "+", "~", "-/+", "-", " "
std::string_view ActionName(ActionType t);    // "create", "update", ...

struct FieldChange {
  std::string field;
  std::optional<std::string> before;  // absent = not set before
  std::optional<std::string> after;   // absent = removed
  bool forces_replacement = false;
};

struct Action {
  ActionType type = ActionType::kNoop;
  std::string id;
  std::string kind;
  std::string name;
  std::string provider;
  Resource desired;                        // empty for deletes
  std::optional<state::AppliedResource> prior;  // last applied, if any
  std::vector<FieldChange> changes;
  bool drift = false;   // observed differs from last-applied
  std::string reason;   // why this action exists, one line
  std::vector<std::string> after;  // action ids that must finish first
};

struct PlanSummary {
  int create = 0, update = 0, replace = 0, destroy = 0, unchanged = 0, drifted = 0;
  bool HasChanges() const { return create + update + replace + destroy > 0; }
};

struct Plan {
  std::string lab;
  std::vector<Action> actions;  // changes only, in a valid execution order
  PlanSummary summary;
  std::vector<std::string> notes;  // provider notes shown under the plan
};

// Context handed to Provider::Apply.
struct ApplyContext {
  const spec::Lab* lab = nullptr;
  const Clock* clock = nullptr;
  std::atomic<bool>* cancelled = nullptr;  // set when the user interrupts
};

class Provider {
 public:
  virtual ~Provider() = default;
  // Short stable name, e.g. "volume". Shown in plans and stored in state.
  virtual std::string_view Name() const = 0;
  // Extra checks on top of spec validation (pure). Default: none.
  virtual void Validate(const spec::Lab& /*lab*/, spec::Diagnostics& /*diags*/) const {}
  // The resources this provider owns for this lab (pure).
  virtual Result<std::vector<Resource>> Desired(const spec::Lab& lab) const = 0;
  // Reads the real state of `desired` plus previously applied resources of
  // this provider (read-only I/O). Resources that cannot be observed are
  // left out of the result.
  virtual Result<Observed> Observe(const spec::Lab& lab, const std::vector<Resource>& desired,
                                   const Applied& applied) = 0;
  // Carries out one action. Must be idempotent: applying a create for an
  // object that already exists in the desired form succeeds.
  virtual Status Apply(const Action& action, ApplyContext& ctx) = 0;
  // One line shown under the plan when this provider has actions, or "".
  virtual std::string Note() const { return ""; }
};

class Registry {
 public:
  void Add(std::unique_ptr<Provider> provider);
  Provider* Find(std::string_view name) const;
  const std::vector<std::unique_ptr<Provider>>& All() const { return providers_; }

 private:
  std::vector<std::unique_ptr<Provider>> providers_;
};

// The last-applied record of a resource, as ApplyPlan stores it (applied_at
// and generation are left for the store to set).
state::AppliedResource ToApplied(const Resource& resource);

// Pure: desired (from every provider), observed and last-applied -> plan.
// Fails with InvalidArgument on duplicate ids or dependencies on unknown
// resources, and on dependency cycles.
Result<Plan> ComputePlan(const std::string& lab_name, const std::vector<Resource>& desired,
                         const Observed& observed, const Applied& applied);

struct PlanOptions {
  bool refresh = true;  // false: skip Observe (no drift detection)
};

// Runs provider validation, Desired and Observe for every provider, then
// ComputePlan. Provider validation problems are appended to diags; if any
// are errors the result is InvalidArgument.
// `applied` is the store's LoadApplied() (empty for a lab never applied).
Result<Plan> MakePlan(const spec::Lab& lab, Registry& registry, const Applied& applied,
                      spec::Diagnostics& diags, const PlanOptions& options = {});

enum class Outcome { kSucceeded, kFailed, kSkipped };

struct ActionResult {
  std::string id;
  ActionType type = ActionType::kNoop;
  Outcome outcome = Outcome::kSkipped;
  std::string message;  // error text, or why it was skipped
  double seconds = 0;
};

struct ApplyReport {
  std::vector<ActionResult> results;  // in completion order
  int succeeded = 0, failed = 0, skipped = 0;
  bool ok() const { return failed == 0 && skipped == 0; }
};

struct ApplyOptions {
  int parallelism = 4;
  // Called (under a lock, from worker threads) when an action starts and ends.
  std::function<void(const Action&)> on_start;
  std::function<void(const Action&, const ActionResult&)> on_done;
  std::atomic<bool>* cancelled = nullptr;
};

// Applies the plan. Each success is recorded in `store` (resource + event in
// one transaction) before dependents start. A failure skips the actions
// after it, transitively, and each skipped action says which failure caused
// it. Never throws; store errors count as failures of that action.
ApplyReport ApplyPlan(const Plan& plan, const spec::Lab& lab, Registry& registry,
                      state::Store& store, const ApplyOptions& options, const Clock& clock);

// ----- Rendering -----

// Terraform-style human text: legend, one block per action with changed
// fields, drift marks, and "Plan: N to add, M to change, K to destroy."
std::string RenderPlanText(const Plan& plan, bool color);
// Machine-readable plan (format_version 1).
nlohmann::json PlanToJson(const Plan& plan);
nlohmann::json ApplyReportToJson(const ApplyReport& report);

}  // namespace hearth::plan

#endif  // HEARTH_PLAN_PLAN_H_
