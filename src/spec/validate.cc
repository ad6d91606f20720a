// Cross-reference validation of a decoded Lab. Pure: reads only the model
// (and checks that secrets.identity exists).
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "spec/spec.h"

namespace hearth::spec {
namespace {

std::string Plural(const std::string& noun) {
  if (!noun.empty() && noun.back() == 'y') return noun.substr(0, noun.size() - 1) + "ies";
  return noun + "s";
}

class Validator {
 public:
  Validator(const Lab& lab, Diagnostics& diags) : lab_(lab), d_(diags) {}

  void Run() {
    CheckDuplicateNames();
    CheckHosts();
    CheckNetworks();
    CheckPolicy();
    CheckServices();
    CheckVolumes();
    CheckBackups();
    CheckMonitoring();
    CheckVpn();
    CheckInterpolations();
    CheckDependencyCycles();
    CheckHostPorts();
    CheckGpuCapacity();
  }

 private:
  // Reports a second element with an already-used name.
  template <typename T, typename LocFn, typename PathFn>
  void Unique(const std::vector<T>& items, const std::string& what, LocFn loc, PathFn path) {
    std::map<std::string, const T*> seen;
    for (const auto& item : items) {
      if (item.name.empty()) continue;
      auto [it, inserted] = seen.emplace(item.name, &item);
      if (!inserted) {
        d_.Error(loc(item), path(item),
                 "duplicate " + what + " name \"" + item.name + "\" (first declared at " +
                     loc(*it->second).ToString() + "); names must be unique");
      }
    }
  }

  void CheckDuplicateNames() {
    auto loc = [](const auto& x) { return x.loc; };
    auto path = [](const auto& x) { return x.path; };
    Unique(lab_.hosts, "host", loc, path);
    Unique(lab_.networks, "network", loc, path);
    Unique(lab_.zones, "zone", loc, path);
    Unique(lab_.services, "service", loc, path);
    Unique(lab_.volumes, "volume", loc, [](const Volume& v) { return v.spec_path; });
    Unique(lab_.policy.aliases, "alias", loc, path);
    Unique(lab_.backups.repositories, "repository", loc, path);
    Unique(lab_.backups.policies, "backup policy", loc, path);
    Unique(lab_.monitoring.probes, "probe", loc, path);
    Unique(lab_.monitoring.alerts, "alert", loc, path);
    if (lab_.vpn.wireguard) Unique(lab_.vpn.wireguard->peers, "wireguard peer", loc, path);
  }

  // The names in `items`, indexed once per list (labs have thousands of refs).
  template <typename T>
  const std::unordered_set<std::string_view>& NameIndex(const std::vector<T>& items) {
    auto [it, inserted] = name_index_.try_emplace(static_cast<const void*>(&items));
    if (inserted) {
      for (const auto& item : items) it->second.insert(item.name);
    }
    return it->second;
  }

  // Reports a reference to a missing element, suggesting the closest name.
  template <typename T>
  bool Exists(const Ref& ref, const std::vector<T>& items, const std::string& what) {
    if (NameIndex(items).count(ref.name)) return true;
    std::vector<std::string> names;
    for (const auto& item : items) {
      if (std::find(names.begin(), names.end(), item.name) == names.end()) {
        names.push_back(item.name);
      }
    }
    std::string msg = what + " \"" + ref.name + "\" is not declared";
    std::string near = ClosestMatch(ref.name, names);
    if (!near.empty()) {
      msg += "; did you mean \"" + near + "\"?";
    } else if (names.empty()) {
      msg += "; the lab declares no " + Plural(what);
    } else {
      msg += "; declared " + Plural(what) + ": " + Join(names, ", ");
    }
    d_.Error(ref.loc, ref.path, msg);
    return false;
  }

  bool ZoneExists(const Ref& ref) {
    // The WireGuard section declares its own zone.
    if (lab_.vpn.wireguard && lab_.vpn.wireguard->zone.name == ref.name) return true;
    return Exists(ref, lab_.zones, "zone");
  }

  void CheckHosts() {
    for (const auto& h : lab_.hosts) {
      if (!h.network) continue;
      if (!Exists(*h.network, lab_.networks, "network")) continue;
      const Network* net = lab_.FindNetwork(h.network->name);
      auto ip = ParseIpAddress(h.address);
      if (net && net->subnet && ip.ok() && ip->v6 == net->subnet->network.v6 &&
          !net->subnet->Contains(*ip)) {
        d_.Error(h.loc, h.path + ".address",
                 "address " + h.address + " is outside network \"" + net->name + "\" (" +
                     net->subnet->text + ")");
      }
    }
  }

  void CheckNetworks() {
    std::map<int, const Network*> vlans;
    for (const auto& n : lab_.networks) {
      if (!n.zone.name.empty()) ZoneExists(n.zone);
      if (n.gateway && n.gateway->v6 && n.subnet6 && !n.subnet6->Contains(*n.gateway) &&
          !(n.subnet && n.subnet->network.v6)) {
        d_.Error(n.loc, n.path + ".gateway",
                 "gateway " + n.gateway->ToString() + " is outside subnet6 " + n.subnet6->text);
      }
      if (n.vlan) {
        auto [it, inserted] = vlans.emplace(*n.vlan, &n);
        if (!inserted) {
          d_.Error(n.loc, n.path + ".vlan",
                   "VLAN id " + std::to_string(*n.vlan) + " is already used by network \"" +
                       it->second->name + "\" (" + it->second->loc.ToString() +
                       "); each network needs its own VLAN id");
        }
      }
      if (n.subnet && n.gateway && n.gateway->v6 == n.subnet->network.v6 &&
          !n.subnet->Contains(*n.gateway)) {
        d_.Error(n.loc, n.path + ".gateway",
                 "gateway " + n.gateway->ToString() + " is outside subnet " + n.subnet->text);
      }
      if (!n.dhcp_range.empty()) CheckDhcpRange(n);
    }
    // Overlapping prefixes (IPv4 and IPv6), including the VPN tunnel's.
    struct Prefix {
      const Cidr* cidr;
      std::string owner;
      Location loc;
      std::string path;
    };
    std::vector<Prefix> prefixes;
    for (const auto& n : lab_.networks) {
      if (n.subnet) prefixes.push_back({&*n.subnet, "network \"" + n.name + "\"", n.loc, n.path + ".subnet"});
      if (n.subnet6) prefixes.push_back({&*n.subnet6, "network \"" + n.name + "\"", n.loc, n.path + ".subnet6"});
    }
    if (lab_.vpn.wireguard && lab_.vpn.wireguard->subnet) {
      prefixes.push_back({&*lab_.vpn.wireguard->subnet, "the WireGuard network",
                          lab_.vpn.wireguard->loc, "vpn.wireguard.network.subnet"});
    }
    for (size_t i = 0; i < prefixes.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (prefixes[i].cidr->Overlaps(*prefixes[j].cidr)) {
          d_.Error(prefixes[i].loc, prefixes[i].path,
                   "subnet " + prefixes[i].cidr->text + " of " + prefixes[i].owner +
                       " overlaps " + prefixes[j].cidr->text + " of " + prefixes[j].owner +
                       " (" + prefixes[j].loc.ToString() + "); give each network its own range");
        }
      }
    }
  }

  void CheckDhcpRange(const Network& n) {
    size_t dash = n.dhcp_range.find('-');
    auto first = ParseIpAddress(n.dhcp_range.substr(0, dash));
    auto last = dash == std::string::npos ? first : ParseIpAddress(n.dhcp_range.substr(dash + 1));
    if (dash == std::string::npos || !first.ok() || !last.ok()) {
      d_.Error(n.loc, n.path + ".dhcp_range",
               "expected FIRST-LAST addresses like 10.20.0.100-10.20.0.199, found \"" +
                   n.dhcp_range + "\"");
      return;
    }
    if (n.subnet && (!n.subnet->Contains(*first) || !n.subnet->Contains(*last))) {
      d_.Error(n.loc, n.path + ".dhcp_range",
               "DHCP range " + n.dhcp_range + " is outside subnet " + n.subnet->text);
    } else if (first->bytes > last->bytes) {
      d_.Error(n.loc, n.path + ".dhcp_range",
               "DHCP range " + n.dhcp_range + " ends before it starts");
    }
  }

  void CheckEndpoint(const Endpoint& e) {
    Ref r{e.name, e.loc, e.path};
    if (e.kind == "zone") {
      ZoneExists(r);
    } else if (e.kind == "network") {
      Exists(r, lab_.networks, "network");
    } else if (e.kind == "service") {
      Exists(r, lab_.services, "service");
    } else if (e.kind == "host") {
      Exists(r, lab_.hosts, "host");
    } else if (e.kind == "alias") {
      Exists(r, lab_.policy.aliases, "alias");
    }
  }

  void CheckPolicy() {
    for (const auto& r : lab_.policy.rules) {
      CheckEndpoint(r.from);
      CheckEndpoint(r.to);
    }
    for (const auto& f : lab_.policy.forwards) {
      CheckEndpoint(f.from);
      CheckEndpoint(f.to);
    }
    for (const auto& m : lab_.policy.masquerade) Exists(m, lab_.networks, "network");
    for (const auto& inv : lab_.policy.invariants) {
      CheckEndpoint(inv.from);
      CheckEndpoint(inv.to);
    }
  }

  void CheckServices() {
    for (const auto& s : lab_.services) {
      if (s.host) Exists(*s.host, lab_.hosts, "host");
      if (s.network) Exists(*s.network, lab_.networks, "network");
      for (const auto& dep : s.depends_on) {
        if (dep.name == s.name) {
          d_.Error(dep.loc, dep.path, "service \"" + s.name + "\" depends on itself; remove it");
        } else {
          Exists(dep, lab_.services, "service");
        }
      }
      for (const auto& v : s.volumes) {
        if (v.volume) Exists(*v.volume, lab_.volumes, "volume");
        if (s.driver != Driver::kExec && v.target.empty()) {
          d_.Error(v.loc, v.path,
                   "a " + std::string(DriverName(s.driver)) +
                       " service must say where the volume is mounted: add target: /path");
        }
      }
      if (s.backup && s.backup->policy) {
        Exists(*s.backup->policy, lab_.backups.policies, "backup policy");
      }
      if (s.backup) {
        for (const auto& v : s.backup->volumes) {
          bool mounted = false;
          std::vector<std::string> names;
          for (const auto& m : s.volumes) {
            if (!m.volume) continue;
            names.push_back(m.volume->name);
            mounted = mounted || m.volume->name == v.name;
          }
          if (!mounted) {
            d_.Error(v.loc, v.path,
                     "service \"" + s.name + "\" does not mount a volume \"" + v.name +
                         "\"; backup.volumes picks from its own volumes (" +
                         (names.empty() ? std::string("it has none") : Join(names, ", ")) + ")");
          }
        }
      }
      if (s.driver == Driver::kExec) {
        if (s.command.empty()) {
          d_.Error(s.loc, s.path,
                   "an exec service needs command: the program to run (or set driver: podman "
                   "with an image)");
        }
        if (!s.image.empty()) {
          d_.Error(s.loc, s.path + ".image",
                   "image is for podman and kubernetes services; an exec service runs command "
                   "(set driver: podman to run the image)");
        }
        for (const auto& p : s.ports) {
          if (p.host != p.container) {
            d_.Error(p.loc, p.path,
                     "an exec service listens on the host directly, so host and container ports "
                     "must match (found " + std::to_string(p.host) + " and " +
                         std::to_string(p.container) + ")");
          }
        }
      } else if (s.image.empty()) {
        d_.Error(s.loc, s.path,
                 "a " + std::string(DriverName(s.driver)) +
                     " service needs image: the container image to run");
      }
      if (s.health.kind != HealthCheck::Kind::kNone &&
          s.health.timeout.value > s.health.interval.value) {
        d_.Error(s.health.loc, s.path + ".health.timeout",
                 "timeout " + s.health.timeout.text + " is longer than interval " +
                     s.health.interval.text + "; checks would overlap");
      }
      if (!s.resources.gpu_vendor.empty() && s.resources.gpu_vendor != "nvidia" &&
          s.resources.gpu_vendor != "amd" && s.resources.gpu_vendor != "intel") {
        d_.Error(s.loc, s.path + ".resources.gpu_vendor",
                 "expected a GPU vendor nvidia, amd or intel, found \"" + s.resources.gpu_vendor +
                     "\"");
      }
      if (s.health.kind == HealthCheck::Kind::kHttp && s.health.http.port == 0 &&
          s.ports.empty()) {
        d_.Error(s.health.loc, s.path + ".health.http",
                 "the http check has no port and the service publishes none; add port: N");
      }
    }
  }

  void CheckVolumes() {
    for (const auto& v : lab_.volumes) {
      if (v.host) Exists(*v.host, lab_.hosts, "host");
      bool dotdot = v.path == ".." || StartsWith(v.path, "../") ||
                    v.path.find("/../") != std::string::npos ||
                    (v.path.size() >= 3 && v.path.compare(v.path.size() - 3, 3, "/..") == 0);
      if (dotdot) {
        d_.Error(v.loc, v.spec_path + ".path",
                 "volume path \"" + v.path + "\" contains \"..\"; use a plain absolute path or a "
                 "path inside the lab directory");
      }
    }
  }

  void CheckBackups() {
    const auto& repos = lab_.backups.repositories;
    for (const auto& r : repos) {
      if (r.url.empty()) continue;
      static const std::vector<std::string> kSchemes = {"sftp:", "rest:", "s3:", "/", "local:"};
      bool ok = std::any_of(kSchemes.begin(), kSchemes.end(),
                            [&](const std::string& p) { return StartsWith(r.url, p); });
      // A path relative to the lab directory has no scheme before its first '/'.
      size_t colon = r.url.find(':');
      if (!ok && (colon == std::string::npos || colon > r.url.find('/'))) ok = true;
      if (StartsWith(r.url, "gs:")) {
        d_.Error(r.loc, r.path + ".url",
                 "gs: URLs are not supported; Google Cloud Storage works through its XML API: "
                 "s3:https://storage.googleapis.com/BUCKET/PREFIX with an HMAC key as credentials");
      } else if (!ok) {
        d_.Error(r.loc, r.path + ".url",
                 "expected a repository URL (a path, local:/path, sftp:user@host:/path, "
                 "rest:http://host:8000/, s3:https://host/bucket/prefix), found \"" + r.url + "\"");
      }
    }
    for (const auto& p : lab_.backups.policies) {
      bool ok = p.repository.name.empty() || Exists(p.repository, repos, "repository");
      std::set<std::string> names;
      if (ok && !p.repository.name.empty()) names.insert(p.repository.name);
      for (const auto& c : p.copies) {
        if (!Exists(c, repos, "repository")) {
          ok = false;
        } else if (!names.insert(c.name).second) {
          d_.Error(c.loc, c.path, "repository \"" + c.name + "\" is listed twice in this policy");
        }
      }
      if (p.drill && p.drill->from && Exists(*p.drill->from, repos, "repository") &&
          !names.count(p.drill->from->name)) {
        d_.Error(p.drill->from->loc, p.drill->from->path,
                 "the drill restores from \"" + p.drill->from->name +
                     "\", which is not one of this policy's repositories");
      }
      bool known = p.three_two_one == "enforce" || p.three_two_one == "warn";
      if (ok && known) Check321(p);
    }
  }

  void Check321(const BackupPolicy& p) {
    ThreeTwoOne t = EvaluateThreeTwoOne(lab_, p);
    if (t.met()) return;
    std::string msg = t.Explain(p.name);
    if (p.three_two_one == "enforce") {
      d_.Error(p.loc, p.path, msg + "; add a repository to copies, or set three_two_one: warn");
    } else {
      d_.Warning(p.loc, p.path,
                 msg + "; add a repository to copies, or set three_two_one: off to accept the risk");
    }
  }

  void CheckMonitoring() {
    for (const auto& p : lab_.monitoring.probes) {
      if (p.service) Exists(*p.service, lab_.services, "service");
      if (p.timeout.value > p.interval.value) {
        d_.Error(p.loc, p.path + ".timeout",
                 "timeout " + p.timeout.text + " is longer than interval " + p.interval.text);
      }
    }
  }

  void CheckVpn() {
    if (!lab_.vpn.wireguard) return;
    const auto& wg = *lab_.vpn.wireguard;
    for (const auto& peer : wg.peers) {
      if (peer.address && wg.subnet && !wg.subnet->Contains(*peer.address)) {
        d_.Error(peer.loc, peer.path + ".address",
                 "peer address " + peer.address->ToString() + " is outside the WireGuard subnet " +
                     wg.subnet->text);
      }
    }
  }

  void CheckInterpolations() {
    for (const auto& in : lab_.interpolations) {
      if (in.kind == "secret") {
        CheckSecretRef(in);
      } else if (in.kind == "volume") {
        Ref r{in.target, in.loc, in.path};
        if (!Exists(r, lab_.volumes, "volume")) continue;
        const Service* s = FindService(in.owner);
        if (s && std::none_of(s->volumes.begin(), s->volumes.end(), [&](const VolumeMount& m) {
              return m.volume && m.volume->name == in.target;
            })) {
          d_.Error(in.loc, in.path,
                   "${volume:" + in.target + "} is used but service \"" + in.owner +
                       "\" does not mount volume \"" + in.target + "\"; add it to volumes");
        }
      } else if (in.kind == "port") {
        auto p = ParsePortSpec(in.target);
        const Service* s = FindService(in.owner);
        if (!p.ok()) {
          d_.Error(in.loc, in.path, "${port:" + in.target + "}: " + p.status().message());
        } else if (s && std::none_of(s->ports.begin(), s->ports.end(), [&](const PortMapping& m) {
                     // "5433" matches either protocol; "5433/udp" only udp.
                     bool proto_ok = in.target.find('/') == std::string::npos ||
                                     m.protocol == p->protocol;
                     return m.container == p->number && proto_ok;
                   })) {
          d_.Error(in.loc, in.path,
                   "${port:" + in.target + "} names a port that service \"" + in.owner +
                       "\" does not publish; add it to ports");
        }
      }
    }
  }

  void CheckSecretRef(const Interpolation& in) {
    if (lab_.secrets.files.empty()) {
      d_.Error(in.loc, in.path,
               "${secret:" + in.target +
                   "} is used but the lab declares no secrets files; add secrets: { files: "
                   "[secrets.sops.yaml] }");
      return;
    }
    std::vector<std::string> keys;
    for (const auto& f : lab_.secrets.files) {
      if (!f.readable) continue;
      for (const auto& k : f.keys) {
        if (k == in.target) return;
        keys.push_back(k);
      }
    }
    bool any_readable = std::any_of(lab_.secrets.files.begin(), lab_.secrets.files.end(),
                                    [](const SecretFile& f) { return f.readable; });
    if (!any_readable) return;  // the missing file is reported once, below
    std::string msg = "secret \"" + in.target + "\" is not in any secrets file";
    std::string near = ClosestMatch(in.target, keys);
    msg += near.empty() ? "; add it with your SOPS tooling" : "; did you mean \"" + near + "\"?";
    d_.Error(in.loc, in.path, msg);
  }

  void CheckDependencyCycles() {
    // Colour-marking DFS; each cycle is reported once, at the service where
    // it is first entered, naming every hop.
    std::map<std::string, int> colour;  // 0 white, 1 grey, 2 black
    std::vector<std::string> stack;
    std::set<std::set<std::string>> reported;
    std::function<void(const Service&)> visit = [&](const Service& s) {
      colour[s.name] = 1;
      stack.push_back(s.name);
      for (const auto& dep : s.depends_on) {
        const Service* next = FindService(dep.name);
        if (!next || next == &s) continue;
        if (colour[next->name] == 1) {
          auto start = std::find(stack.begin(), stack.end(), next->name);
          std::vector<std::string> cycle(start, stack.end());
          std::set<std::string> members(cycle.begin(), cycle.end());
          if (reported.insert(members).second) {
            cycle.push_back(next->name);
            d_.Error(dep.loc, dep.path,
                     "depends_on cycle: " + Join(cycle, " -> ") +
                         "; remove one of these dependencies");
          }
        } else if (colour[next->name] == 0) {
          visit(*next);
        }
      }
      stack.pop_back();
      colour[s.name] = 2;
    };
    for (const auto& s : lab_.services)
      if (colour[s.name] == 0) visit(s);
  }

  void CheckHostPorts() {
    // (host, protocol, port) -> first binder. Kubernetes services run on a
    // cluster and publish through it, so they do not bind host ports here.
    std::map<std::tuple<std::string, int, std::string>, std::pair<const Service*, const PortMapping*>>
        bound;
    for (const auto& s : lab_.services) {
      if (s.driver == Driver::kKubernetes) continue;
      std::string host = lab_.HostOf(s);
      for (const auto& p : s.ports) {
        auto key = std::make_tuple(host, p.host, std::string(ProtocolName(p.protocol)));
        auto [it, inserted] = bound.emplace(key, std::make_pair(&s, &p));
        if (!inserted && it->second.first != &s) {
          d_.Error(p.loc, p.path,
                   "host port " + std::to_string(p.host) + "/" +
                       std::string(ProtocolName(p.protocol)) + " on host \"" + host +
                       "\" is already bound by service \"" + it->second.first->name + "\" (" +
                       it->second.second->loc.ToString() + "); pick another host port");
        } else if (!inserted) {
          d_.Error(p.loc, p.path,
                   "port " + std::to_string(p.host) + "/" + std::string(ProtocolName(p.protocol)) +
                       " is listed twice for this service");
        }
      }
    }
  }

  void CheckGpuCapacity() {
    std::map<std::string, int> wanted;
    std::map<std::string, const Service*> last;
    for (const auto& s : lab_.services) {
      if (s.resources.gpus == 0 || s.driver == Driver::kKubernetes) continue;
      wanted[lab_.HostOf(s)] += s.resources.gpus;
      last[lab_.HostOf(s)] = &s;
    }
    for (const auto& [host, n] : wanted) {
      const Host* h = lab_.FindHost(host);
      int have = h ? h->resources.TotalGpus() : 0;
      if (n > have) {
        const Service* s = last[host];
        d_.Error(s->loc, s->path + ".resources.gpus",
                 "services on host \"" + host + "\" ask for " + std::to_string(n) +
                     " GPUs but the host declares " + std::to_string(have) +
                     "; place some on another host or add GPUs to the host's resources");
      }
    }
  }

  const Service* FindService(std::string_view name) {
    if (services_.empty()) {
      for (const auto& s : lab_.services) services_.emplace(s.name, &s);
    }
    auto it = services_.find(name);
    return it == services_.end() ? nullptr : it->second;
  }

  const Lab& lab_;
  Diagnostics& d_;
  std::unordered_map<const void*, std::unordered_set<std::string_view>> name_index_;
  std::unordered_map<std::string_view, const Service*> services_;
};

}  // namespace

void ValidateLab(const Lab& lab, Diagnostics& diags) {
  Validator(lab, diags).Run();
  // Missing secrets files, reported once each.
  for (const auto& f : lab.secrets.files) {
    if (!f.readable) {
      diags.Error(f.loc, f.path,
                  "secrets file \"" + f.file + "\" was not found or is not a YAML/JSON map (looked in " +
                      lab.root + "); create it in SOPS format or remove it from secrets.files");
    }
  }
  // The identity file is often kept out of git: a warning, not an error.
  if (!lab.secrets.identity.empty()) {
    const std::string& id = lab.secrets.identity;
    std::string full = id[0] == '/' ? id : lab.root + "/" + id;
    if (::access(full.c_str(), R_OK) != 0) {
      diags.Warning(lab.secrets.identity_loc, "secrets.identity",
                    "identity file " + full +
                        " is missing or unreadable; services that use ${secret:...} will not "
                        "start until it exists (or set HEARTH_AGE_KEY_FILE / SOPS_AGE_KEY_FILE)");
    }
  }
}

}  // namespace hearth::spec
