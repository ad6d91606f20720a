// Network provider (declared): networks and the firewall policy.
//
// This build records the desired networks and policy in the state store so
// plans show and track them; it does not yet create bridges or program
// nftables, and says so under every plan that touches it.
#include <nlohmann/json.hpp>

#include "providers/providers.h"

namespace hearth::providers {
namespace {

std::string PortsText(const std::vector<spec::PortSpec>& ports) {
  std::vector<std::string> parts;
  for (const auto& p : ports) parts.push_back(p.ToString());
  return parts.empty() ? "all" : Join(parts, ",");
}

class NetworkProvider final : public plan::Provider {
 public:
  std::string_view Name() const override { return "network"; }

  Result<std::vector<plan::Resource>> Desired(const spec::Lab& lab) const override {
    std::vector<plan::Resource> out;
    std::vector<std::string> network_ids;
    for (const auto& n : lab.networks) {
      plan::Resource r;
      r.kind = "network";
      r.name = n.name;
      if (n.vlan) r.fields["vlan"] = std::to_string(*n.vlan);
      if (n.subnet) r.fields["subnet"] = n.subnet->text;
      if (n.subnet6) r.fields["subnet6"] = n.subnet6->text;
      if (n.gateway) r.fields["gateway"] = n.gateway->ToString();
      if (!n.dhcp_range.empty()) r.fields["dhcp_range"] = n.dhcp_range;
      if (!n.parent.empty()) r.fields["parent"] = n.parent;
      r.fields["zone"] = n.zone.name;
      r.force_new = {"vlan", "parent"};
      network_ids.push_back(r.Id());
      out.push_back(std::move(r));
    }
    if (!lab.networks.empty() || !lab.policy.rules.empty()) {
      plan::Resource fw;
      fw.kind = "firewall";
      fw.name = "policy";
      fw.fields["default"] = std::string(spec::VerdictName(lab.policy.default_action));
      for (size_t i = 0; i < lab.policy.rules.size(); ++i) {
        const auto& rule = lab.policy.rules[i];
        std::string text = rule.from.ToString() + " -> " + rule.to.ToString() + " " +
                           PortsText(rule.ports) + " " +
                           std::string(spec::VerdictName(rule.action)) + (rule.log ? " log" : "");
        fw.fields["rules[" + std::to_string(i) + "]"] = text;
      }
      for (size_t i = 0; i < lab.policy.forwards.size(); ++i) {
        const auto& f = lab.policy.forwards[i];
        fw.fields["forwards[" + std::to_string(i) + "]"] =
            f.from.ToString() + " " + f.port.ToString() + " -> " + f.to.ToString() +
            (f.to_port ? ":" + std::to_string(*f.to_port) : "");
      }
      for (size_t i = 0; i < lab.policy.masquerade.size(); ++i) {
        fw.fields["masquerade[" + std::to_string(i) + "]"] = lab.policy.masquerade[i].name;
      }
      for (const auto& a : lab.policy.aliases) {
        fw.fields["aliases." + a.name] = Join(a.addresses, ",");
      }
      fw.depends_on = network_ids;
      out.push_back(std::move(fw));
    }
    return out;
  }

  Result<plan::Observed> Observe(const spec::Lab&, const std::vector<plan::Resource>&,
                                 const plan::Applied&) override {
    return plan::Observed{};  // nothing to observe until nftables is programmed
  }

  Status Apply(const plan::Action&, plan::ApplyContext&) override { return Status::Ok(); }

  std::string Note() const override {
    return "network: networks and firewall policy are recorded in state only; this build does "
           "not create bridges or program nftables yet.";
  }
};

}  // namespace

std::unique_ptr<plan::Provider> NewNetworkProvider() { return std::make_unique<NetworkProvider>(); }

}  // namespace hearth::providers
