// ComputePlan: the pure diff of desired, observed and last-applied state.
#include <algorithm>
#include <map>
#include <set>

#include "plan/plan.h"

namespace hearth::plan {

std::string_view ActionSymbol(ActionType t) {
  switch (t) {
    case ActionType::kNoop: return " ";
    case ActionType::kCreate: return "+";
    case ActionType::kUpdate: return "~";
    case ActionType::kReplace: return "-/+";
    case ActionType::kDelete: return "-";
  }
  return "?";
}

std::string_view ActionName(ActionType t) {
  switch (t) {
    case ActionType::kNoop: return "no-op";
    case ActionType::kCreate: return "create";
    case ActionType::kUpdate: return "update";
    case ActionType::kReplace: return "replace";
    case ActionType::kDelete: return "delete";
  }
  return "unknown";
}

namespace {

std::vector<FieldChange> DiffFields(const Fields& before, const Fields& after,
                                    const std::set<std::string>& force_new) {
  std::vector<FieldChange> out;
  std::set<std::string> keys;
  for (const auto& [k, v] : before) keys.insert(k);
  for (const auto& [k, v] : after) keys.insert(k);
  for (const auto& k : keys) {
    auto b = before.find(k);
    auto a = after.find(k);
    std::optional<std::string> bv, av;
    if (b != before.end()) bv = b->second;
    if (a != after.end()) av = a->second;
    if (bv == av) continue;
    // A list field "ports[2]" forces replacement if "ports" does.
    std::string base = k.substr(0, k.find_first_of(".["));
    out.push_back(FieldChange{k, bv, av, force_new.count(k) > 0 || force_new.count(base) > 0});
  }
  return out;
}

}  // namespace

Result<Plan> ComputePlan(const std::string& lab_name, const std::vector<Resource>& desired,
                         const Observed& observed, const Applied& applied) {
  Plan plan;
  plan.lab = lab_name;
  std::map<std::string, const Resource*> by_id;
  for (const auto& r : desired) {
    if (!by_id.emplace(r.Id(), &r).second) {
      return InvalidArgument("two resources share the id \"" + r.Id() +
                             "\"; this is a provider bug, please report it");
    }
  }
  for (const auto& r : desired) {
    for (const auto& dep : r.depends_on) {
      if (!by_id.count(dep)) {
        return InvalidArgument("resource \"" + r.Id() + "\" depends on \"" + dep +
                               "\", which is not part of the lab");
      }
    }
  }

  std::map<std::string, Action> actions;
  for (const auto& r : desired) {
    const std::string id = r.Id();
    Action a;
    a.id = id;
    a.kind = r.kind;
    a.name = r.name;
    a.provider = r.provider;
    a.desired = r;
    auto ap = applied.find(id);
    auto ob = observed.find(id);
    if (ap == applied.end()) {
      a.type = ActionType::kCreate;
      a.changes = DiffFields({}, r.fields, {});
      if (ob != observed.end() && ob->second.exists) {
        a.reason = "exists already; Hearth will adopt it";
      }
    } else {
      a.prior = ap->second;
      bool known = ob != observed.end();
      if (known && !ob->second.exists) {
        a.type = ActionType::kCreate;
        a.drift = true;
        a.reason = "was deleted outside Hearth";
        a.changes = DiffFields({}, r.fields, {});
      } else {
        // What is there now: the last applied fields, corrected by whatever
        // the provider could read back.
        Fields current = ap->second.fields;
        if (known) {
          for (const auto& [k, v] : ob->second.fields) {
            auto it = current.find(k);
            if (it == current.end() || it->second != v) a.drift = true;
            current[k] = v;
          }
        }
        a.changes = DiffFields(current, r.fields, r.force_new);
        bool replace = ap->second.provider != r.provider ||
                       std::any_of(a.changes.begin(), a.changes.end(),
                                   [](const FieldChange& c) { return c.forces_replacement; });
        if (a.changes.empty()) {
          a.type = ActionType::kNoop;
        } else if (replace) {
          a.type = ActionType::kReplace;
        } else {
          a.type = ActionType::kUpdate;
        }
        if (a.drift) a.reason = "changed outside Hearth";
        // Dependency changes alone are recorded quietly, not shown as changes.
        if (a.type == ActionType::kNoop && ap->second.depends_on != r.depends_on) {
          a.type = ActionType::kUpdate;
          a.reason = "dependencies changed";
        }
      }
    }
    if (a.drift) ++plan.summary.drifted;
    actions.emplace(id, std::move(a));
  }
  for (const auto& [id, ap] : applied) {
    if (by_id.count(id)) continue;
    Action a;
    a.type = ActionType::kDelete;
    a.id = id;
    a.kind = ap.kind;
    a.name = ap.name;
    a.provider = ap.provider;
    a.prior = ap;
    a.changes = DiffFields(ap.fields, {}, {});
    a.reason = "no longer in the lab spec";
    actions.emplace(id, std::move(a));
  }

  // Ordering edges. A create/update waits for the nearest changed resources it
  // depends on (looking through unchanged ones). A delete waits for every
  // action on resources that depended on it.
  auto changed = [&](const std::string& id) {
    auto it = actions.find(id);
    return it != actions.end() && it->second.type != ActionType::kNoop;
  };
  std::map<std::string, std::set<std::string>> after;
  for (auto& [id, a] : actions) {
    if (a.type == ActionType::kNoop) continue;
    if (a.type == ActionType::kDelete) continue;
    std::set<std::string> visited;
    std::vector<std::string> todo = a.desired.depends_on;
    while (!todo.empty()) {
      std::string dep = todo.back();
      todo.pop_back();
      if (!visited.insert(dep).second) continue;
      auto it = actions.find(dep);
      if (it == actions.end()) continue;
      if (it->second.type != ActionType::kNoop && it->second.type != ActionType::kDelete) {
        after[id].insert(dep);
      } else if (it->second.type == ActionType::kNoop) {
        for (const auto& d : it->second.desired.depends_on) todo.push_back(d);
      }
    }
  }
  for (const auto& [id, ap] : applied) {
    for (const auto& dep : ap.depends_on) {
      auto it = actions.find(dep);
      if (it != actions.end() && it->second.type == ActionType::kDelete && changed(id)) {
        after[dep].insert(id);  // delete the dependency after its dependant changes
      }
    }
  }

  // Kahn's algorithm in waves: every action whose prerequisites are done
  // forms the next wave, sorted by id, so output is deterministic and reads
  // in rollout order (networks, secrets and volumes first, then services).
  std::map<std::string, int> indegree;
  std::map<std::string, std::vector<std::string>> dependants;
  for (const auto& [id, a] : actions) {
    if (a.type == ActionType::kNoop) {
      ++plan.summary.unchanged;
      continue;
    }
    indegree[id] += 0;
    for (const auto& dep : after[id]) {
      ++indegree[id];
      dependants[dep].push_back(id);
    }
  }
  std::set<std::string> ready, next_wave;
  for (const auto& [id, n] : indegree)
    if (n == 0) ready.insert(id);
  while (!ready.empty() || !next_wave.empty()) {
    if (ready.empty()) std::swap(ready, next_wave);
    std::string id = *ready.begin();
    ready.erase(ready.begin());
    Action& a = actions[id];
    a.after.assign(after[id].begin(), after[id].end());
    switch (a.type) {
      case ActionType::kCreate: ++plan.summary.create; break;
      case ActionType::kUpdate: ++plan.summary.update; break;
      case ActionType::kReplace: ++plan.summary.replace; break;
      case ActionType::kDelete: ++plan.summary.destroy; break;
      case ActionType::kNoop: break;
    }
    plan.actions.push_back(std::move(a));
    for (const auto& d : dependants[id]) {
      if (--indegree[d] == 0) next_wave.insert(d);
    }
    indegree.erase(id);
  }
  if (!indegree.empty()) {
    std::vector<std::string> stuck;
    for (const auto& [id, n] : indegree) stuck.push_back(id);
    return InvalidArgument("resource dependencies form a cycle among: " + Join(stuck, ", "));
  }
  return plan;
}

}  // namespace hearth::plan
