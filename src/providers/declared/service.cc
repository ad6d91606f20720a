// Service provider (declared): the canonical form of each service.
//
// Plan and apply record each service's desired form in the state store, with
// the dependencies that order its rollout (networks, volumes, secrets and
// depends_on). Running them is the daemon's job (`hearth up`, src/daemon),
// which reconciles continuously instead of once per apply.
#include <fmt/format.h>

#include <set>

#include "providers/providers.h"

namespace hearth::providers {
namespace {

std::string HealthText(const spec::HealthCheck& h) {
  std::string timing = " every " + h.interval.text + " timeout " + h.timeout.text;
  if (h.start_period.value.count() > 0) timing += " grace " + h.start_period.text;
  switch (h.kind) {
    case spec::HealthCheck::Kind::kNone: return "none";
    case spec::HealthCheck::Kind::kTcp: return "tcp " + std::to_string(h.tcp_port) + timing;
    case spec::HealthCheck::Kind::kExec: return "exec " + Join(h.exec, " ") + timing;
    case spec::HealthCheck::Kind::kHttp: {
      std::string s = h.http.scheme + " " +
                      (h.http.port ? ":" + std::to_string(h.http.port) : "") + h.http.path +
                      " status " + std::to_string(h.http.status);
      if (!h.http.body_contains.empty()) s += " contains " + h.http.body_contains;
      return s + timing;
    }
  }
  return "none";
}


std::set<std::string> SecretUsers(const spec::Lab& lab) {
  std::set<std::string> users;
  for (const auto& in : lab.interpolations)
    if (in.kind == "secret" && !in.owner.empty()) users.insert(in.owner);
  return users;
}

}  // namespace

// "(sensitive) <marker>" for a secret's key path: the marker is a digest of
// the value as stored (its ciphertext), so a plan shows which secret changed
// without ever holding its plaintext. Empty when no file has the key.
std::string SensitiveMarker(const spec::Lab& lab, const std::string& key_path) {
  for (const auto& file : lab.secrets.files) {
    auto it = file.value_digests.find(key_path);
    if (it != file.value_digests.end()) return "(sensitive) " + it->second.substr(0, 12);
  }
  return "";
}

namespace {

plan::Fields Fields(const spec::Lab& lab, const spec::Service& s) {
  plan::Fields f;
  f["driver"] = std::string(spec::DriverName(s.driver));
  f["host"] = lab.HostOf(s);
  if (!s.image.empty()) f["image"] = s.image;
  if (!s.command.empty()) f["command"] = s.command;
  for (size_t i = 0; i < s.args.size(); ++i) f["args[" + std::to_string(i) + "]"] = s.args[i];
  // Environment values keep their ${secret:...} form: plaintext never
  // reaches the state store or the plan.
  for (const auto& [k, v] : s.env) f["env." + k] = v;
  if (!s.working_dir.empty()) f["working_dir"] = s.working_dir;
  if (!s.user.empty()) f["user"] = s.user;
  for (size_t i = 0; i < s.ports.size(); ++i) {
    const auto& p = s.ports[i];
    std::string text = std::to_string(p.host);
    if (p.container != p.host) text += ":" + std::to_string(p.container);
    text += "/" + std::string(spec::ProtocolName(p.protocol));
    if (!p.host_ip.empty()) text = p.host_ip + ":" + text;
    f["ports[" + std::to_string(i) + "]"] = text;
  }
  for (size_t i = 0; i < s.volumes.size(); ++i) {
    const auto& v = s.volumes[i];
    std::string text = v.volume ? v.volume->name : v.source;
    if (!v.target.empty()) text += ":" + v.target;
    if (v.read_only) text += ":ro";
    f["volumes[" + std::to_string(i) + "]"] = text;
  }
  if (s.network) f["network"] = s.network->name;
  if (s.health.kind != spec::HealthCheck::Kind::kNone) f["health"] = HealthText(s.health);
  if (s.resources.cpu) f["resources.cpu"] = fmt::format("{}", *s.resources.cpu);
  if (s.resources.memory) f["resources.memory"] = s.resources.memory->text;
  if (s.resources.gpus) f["resources.gpus"] = std::to_string(s.resources.gpus);
  f["restart"] = std::string(spec::RestartPolicyName(s.restart));
  if (s.sandbox) f["sandbox"] = s.sandbox_private_network ? "private network" : "true";
  for (const auto& [k, v] : s.labels) f["labels." + k] = v;
  for (const auto& [name, content] : s.secret_files) f["secret_files." + name] = content;
  // One field per secret the service uses: changing one secret re-plans (and
  // the daemon restarts) only the services that use it.
  for (const auto& in : lab.interpolations) {
    if (in.kind != "secret" || in.owner != s.name) continue;
    std::string marker = SensitiveMarker(lab, in.target);
    if (!marker.empty()) f["secret." + in.target] = marker;
  }
  return f;
}

class ServiceProvider final : public plan::Provider {
 public:
  std::string_view Name() const override { return "service"; }

  Result<std::vector<plan::Resource>> Desired(const spec::Lab& lab) const override {
    std::vector<plan::Resource> out;
    std::vector<std::string> secret_ids;
    for (const auto& f : lab.secrets.files) secret_ids.push_back("secret." + f.file);
    std::set<std::string> uses_secrets = SecretUsers(lab);
    for (const auto& s : lab.services) {
      plan::Resource r;
      r.kind = "service";
      r.name = s.name;
      r.fields = Fields(lab, s);
      r.force_new = {"driver", "host"};
      for (const auto& d : s.depends_on) r.depends_on.push_back("service." + d.name);
      for (const auto& v : s.volumes)
        if (v.volume) r.depends_on.push_back("volume." + v.volume->name);
      if (s.network) r.depends_on.push_back("network." + s.network->name);
      // Segmentation is in place before anything is exposed: every service
      // waits for the firewall policy (which itself waits for all networks).
      if (!lab.networks.empty() || !lab.policy.rules.empty()) {
        r.depends_on.push_back("firewall.policy");
      }
      if (uses_secrets.count(s.name)) {
        r.depends_on.insert(r.depends_on.end(), secret_ids.begin(), secret_ids.end());
      }
      out.push_back(std::move(r));
    }
    return out;
  }

  Result<plan::Observed> Observe(const spec::Lab&, const std::vector<plan::Resource>&,
                                 const plan::Applied&) override {
    return plan::Observed{};  // no runtime driver to ask yet
  }

  Status Apply(const plan::Action&, plan::ApplyContext&) override { return Status::Ok(); }

  std::string Note() const override {
    return "service: apply records services in state; hearth up starts them in order and keeps "
           "them healthy.";
  }
};

}  // namespace

plan::Fields ServiceFields(const spec::Lab& lab, const spec::Service& s) {
  return Fields(lab, s);
}

std::unique_ptr<plan::Provider> NewServiceProvider() { return std::make_unique<ServiceProvider>(); }

}  // namespace hearth::providers
