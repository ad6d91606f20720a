// Model helpers: diagnostics, lookups and enum names.
#include <algorithm>
#include <tuple>

#include "spec/spec.h"

namespace hearth::spec {

std::string Location::ToString() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Diagnostic::ToString() const {
  std::string out = loc.ToString();
  out += severity == Severity::kError ? ": error: " : ": warning: ";
  if (!path.empty()) out += path + ": ";
  out += message;
  return out;
}

void Diagnostics::Error(const Location& loc, std::string path, std::string message) {
  all_.push_back(Diagnostic{Diagnostic::Severity::kError, loc, std::move(path), std::move(message)});
}

void Diagnostics::Warning(const Location& loc, std::string path, std::string message) {
  all_.push_back(
      Diagnostic{Diagnostic::Severity::kWarning, loc, std::move(path), std::move(message)});
}

bool Diagnostics::HasErrors() const { return ErrorCount() > 0; }

size_t Diagnostics::ErrorCount() const {
  return static_cast<size_t>(std::count_if(all_.begin(), all_.end(), [](const Diagnostic& d) {
    return d.severity == Diagnostic::Severity::kError;
  }));
}

void Diagnostics::Sort() {
  auto key = [](const Diagnostic& d) {
    return std::tie(d.loc.file, d.loc.line, d.loc.column, d.severity, d.path, d.message);
  };
  std::stable_sort(all_.begin(), all_.end(),
                   [&](const Diagnostic& a, const Diagnostic& b) { return key(a) < key(b); });
  all_.erase(std::unique(all_.begin(), all_.end(),
                         [&](const Diagnostic& a, const Diagnostic& b) { return key(a) == key(b); }),
             all_.end());
}

void Diagnostics::Append(const Diagnostics& other) {
  all_.insert(all_.end(), other.all_.begin(), other.all_.end());
}

int HostResources::TotalGpus() const {
  int n = 0;
  for (const auto& g : gpus) n += g.count;
  return n;
}

std::string Endpoint::ToString() const {
  if (kind == "any" || kind == "wan") return kind;
  if (kind == "zone") return name;
  return kind + ":" + name;
}

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kAllow: return "allow";
    case Verdict::kDeny: return "deny";
    case Verdict::kReject: return "reject";
  }
  return "deny";
}

std::string_view DriverName(Driver d) {
  switch (d) {
    case Driver::kExec: return "exec";
    case Driver::kPodman: return "podman";
    case Driver::kKubernetes: return "kubernetes";
  }
  return "exec";
}

std::string_view RestartPolicyName(RestartPolicy r) {
  switch (r) {
    case RestartPolicy::kAlways: return "always";
    case RestartPolicy::kOnFailure: return "on-failure";
    case RestartPolicy::kNever: return "never";
  }
  return "always";
}

bool Retention::Empty() const {
  return last == 0 && hourly == 0 && daily == 0 && weekly == 0 && monthly == 0 && yearly == 0 &&
         !within.has_value();
}

namespace {
template <typename T>
const T* FindByName(const std::vector<T>& items, std::string_view name) {
  for (const auto& item : items)
    if (item.name == name) return &item;
  return nullptr;
}
}  // namespace

const Service* Lab::FindService(std::string_view name) const { return FindByName(services, name); }
const Network* Lab::FindNetwork(std::string_view name) const { return FindByName(networks, name); }
const Host* Lab::FindHost(std::string_view name) const { return FindByName(hosts, name); }
const Volume* Lab::FindVolume(std::string_view name) const { return FindByName(volumes, name); }
const Zone* Lab::FindZone(std::string_view name) const { return FindByName(zones, name); }

std::string Lab::HostOf(const Service& s) const {
  if (s.host) return s.host->name;
  if (hosts.size() == 1) return hosts.front().name;
  return "local";
}

std::string Lab::VolumePath(const Volume& v) const {
  std::string p = v.path.empty() ? ".hearth/volumes/" + v.name : v.path;
  if (!p.empty() && p[0] == '/') return p;
  return root + "/" + p;
}

ThreeTwoOne EvaluateThreeTwoOne(const Lab& lab, const BackupPolicy& policy) {
  ThreeTwoOne t;
  t.copies.push_back("live data");
  t.media.insert("live");
  std::vector<std::string> names;
  if (!policy.repository.name.empty()) names.push_back(policy.repository.name);
  for (const auto& c : policy.copies) names.push_back(c.name);
  for (const auto& n : names) {
    for (const auto& r : lab.backups.repositories) {
      if (r.name != n) continue;
      t.copies.push_back(r.name);
      t.media.insert(r.medium.empty() ? r.name : r.medium);
      if (r.offsite) t.offsite.push_back(r.name);
      break;
    }
  }
  if (t.copies.size() < 3) {
    t.missing.push_back(std::to_string(t.copies.size()) + (t.copies.size() == 1 ? " copy" : " copies") +
                        " (needs 3)");
  }
  if (t.media.size() < 2) t.missing.push_back("1 medium (needs 2)");
  if (t.offsite.empty()) t.missing.push_back("no offsite copy (needs 1)");
  return t;
}

std::string ThreeTwoOne::Explain(const std::string& policy) const {
  std::string have = std::to_string(copies.size()) + (copies.size() == 1 ? " copy (" : " copies (");
  for (size_t i = 0; i < copies.size(); ++i) have += (i ? ", " : "") + copies[i];
  have += ") on " + std::to_string(media.size()) + (media.size() == 1 ? " medium (" : " media (");
  size_t i = 0;
  for (const auto& m : media) have += (i++ ? ", " : "") + m;
  have += ")";
  have += offsite.empty() ? ", none offsite" : ", " + std::to_string(offsite.size()) + " offsite";
  std::string out = "backup policy \"" + policy + "\" ";
  out += met() ? "meets" : "does not meet";
  out += " the 3-2-1 rule (at least 3 copies counting the live data, on at least 2 media, at "
         "least 1 offsite): it has " + have;
  if (!met()) {
    out += "; missing: ";
    for (size_t k = 0; k < missing.size(); ++k) out += (k ? ", " : "") + missing[k];
  }
  return out;
}

}  // namespace hearth::spec
