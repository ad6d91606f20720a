// Plan and apply-report rendering: Terraform-style text and JSON.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "plan/plan.h"

namespace hearth::plan {
namespace {

const char* Colour(ActionType t) {
  switch (t) {
    case ActionType::kCreate: return "\033[32m";
    case ActionType::kUpdate: return "\033[33m";
    case ActionType::kReplace: return "\033[35m";
    case ActionType::kDelete: return "\033[31m";
    case ActionType::kNoop: return "";
  }
  return "";
}

std::string Quote(const std::string& s) { return nlohmann::json(s).dump(); }

std::string Headline(const Action& a) {
  std::string h = "# " + a.id;
  switch (a.type) {
    case ActionType::kCreate: h += " will be created"; break;
    case ActionType::kUpdate: h += " will be updated in place"; break;
    case ActionType::kReplace: h += " must be replaced"; break;
    case ActionType::kDelete: h += " will be destroyed"; break;
    case ActionType::kNoop: h += " is unchanged"; break;
  }
  if (a.drift) h += " [drift]";
  if (!a.reason.empty()) h += " (" + a.reason + ")";
  return h;
}

}  // namespace

std::string RenderPlanText(const Plan& plan, bool color) {
  const char* reset = color ? "\033[0m" : "";
  const char* bold = color ? "\033[1m" : "";
  std::string out;
  const auto& s = plan.summary;
  if (!s.HasChanges()) {
    out += std::string(bold) + "No changes." + reset + " Lab \"" + plan.lab + "\" matches its spec (" +
           std::to_string(s.unchanged) + " resources up to date).\n";
    return out;
  }
  out += "Hearth will perform these actions on lab \"" + plan.lab + "\":\n";
  out += "  (+ create   ~ update in place   -/+ replace   - destroy)\n\n";
  for (const auto& a : plan.actions) {
    std::string c = color ? Colour(a.type) : "";
    std::string sym(ActionSymbol(a.type));
    out += "  " + std::string(bold) + Headline(a) + reset + "\n";
    out += "  " + c + sym + reset + " " + a.kind + " " + Quote(a.name) + " {\n";
    size_t width = 0;
    for (const auto& ch : a.changes) width = std::max(width, ch.field.size());
    for (const auto& ch : a.changes) {
      std::string pad(width - ch.field.size(), ' ');
      std::string line;
      if (!ch.before) {
        line = std::string(color ? Colour(ActionType::kCreate) : "") + "+" + reset + " " +
               ch.field + pad + " = " + Quote(*ch.after);
      } else if (!ch.after) {
        line = std::string(color ? Colour(ActionType::kDelete) : "") + "-" + reset + " " +
               ch.field + pad + " = " + Quote(*ch.before);
      } else {
        line = std::string(color ? Colour(ActionType::kUpdate) : "") + "~" + reset + " " +
               ch.field + pad + " = " + Quote(*ch.before) + " -> " + Quote(*ch.after);
      }
      if (ch.forces_replacement && a.type == ActionType::kReplace) line += "  # forces replacement";
      out += "      " + line + "\n";
    }
    out += "    }\n\n";
  }
  out += std::string(bold) + "Plan: " + std::to_string(s.create) + " to add, " +
         std::to_string(s.update) + " to change, " + std::to_string(s.replace) +
         " to replace, " + std::to_string(s.destroy) + " to destroy." + reset;
  if (s.unchanged) out += " " + std::to_string(s.unchanged) + " unchanged.";
  if (s.drifted) out += " " + std::to_string(s.drifted) + " drifted.";
  out += "\n";
  for (const auto& note : plan.notes) out += "Note: " + note + "\n";
  return out;
}

nlohmann::json PlanToJson(const Plan& plan) {
  nlohmann::json changes = nlohmann::json::array();
  for (const auto& a : plan.actions) {
    nlohmann::json fields = nlohmann::json::array();
    std::vector<std::string> replace_paths;
    for (const auto& ch : a.changes) {
      nlohmann::json f = {{"field", ch.field},
                          {"before", ch.before ? nlohmann::json(*ch.before) : nlohmann::json()},
                          {"after", ch.after ? nlohmann::json(*ch.after) : nlohmann::json()}};
      if (ch.forces_replacement) {
        f["forces_replacement"] = true;
        replace_paths.push_back(ch.field);
      }
      fields.push_back(std::move(f));
    }
    nlohmann::json actions;
    switch (a.type) {
      case ActionType::kReplace: actions = {"delete", "create"}; break;
      default: actions = {std::string(ActionName(a.type))};
    }
    nlohmann::json entry = {{"address", a.id},     {"kind", a.kind},
                            {"name", a.name},      {"provider", a.provider},
                            {"actions", actions},  {"drift", a.drift},
                            {"reason", a.reason},  {"after", a.after},
                            {"changes", fields}};
    if (!replace_paths.empty()) entry["replace_paths"] = replace_paths;
    changes.push_back(std::move(entry));
  }
  const auto& s = plan.summary;
  return {{"format_version", 1},
          {"lab", plan.lab},
          {"has_changes", s.HasChanges()},
          {"resource_changes", changes},
          {"summary",
           {{"add", s.create},
            {"change", s.update},
            {"replace", s.replace},
            {"destroy", s.destroy},
            {"unchanged", s.unchanged},
            {"drifted", s.drifted}}},
          {"notes", plan.notes}};
}

nlohmann::json ApplyReportToJson(const ApplyReport& report) {
  nlohmann::json results = nlohmann::json::array();
  for (const auto& r : report.results) {
    const char* outcome = r.outcome == Outcome::kSucceeded ? "succeeded"
                          : r.outcome == Outcome::kFailed  ? "failed"
                                                           : "skipped";
    results.push_back({{"address", r.id},
                       {"action", std::string(ActionName(r.type))},
                       {"outcome", outcome},
                       {"message", r.message},
                       {"seconds", r.seconds}});
  }
  return {{"ok", report.ok()},
          {"succeeded", report.succeeded},
          {"failed", report.failed},
          {"skipped", report.skipped},
          {"results", results}};
}

}  // namespace hearth::plan
