#include "spec/decode.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

namespace hearth::spec::internal {

Location Ctx::Loc(const Node& n) const {
  Location loc;
  loc.file = file;
  if (n.IsDefined() && !n.Mark().is_null()) {
    loc.line = n.Mark().line + 1;
    loc.column = n.Mark().column + 1;
  }
  return loc;
}

void Ctx::Error(const Node& n, const std::string& path, std::string message) const {
  diags->Error(Loc(n), path, std::move(message));
}

std::string Describe(const Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "an empty value";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a map";
  return "\"" + n.Scalar() + "\"";
}

namespace {

// Records every ${kind:target} in `s`; reports malformed ones.
void ScanInterpolations(const Ctx& ctx, const Node& n, const std::string& path,
                        const std::string& s) {
  static const std::vector<std::string> kKinds = {"secret", "volume", "port", "runtime_dir",
                                                  "lab_dir"};
  size_t i = 0;
  while ((i = s.find("${", i)) != std::string::npos) {
    if (i > 0 && s[i - 1] == '$') {  // "$${" is a literal "${"
      i += 2;
      continue;
    }
    size_t end = s.find('}', i);
    if (end == std::string::npos) {
      ctx.Error(n, path,
                "unterminated reference \"" + s.substr(i) +
                    "\": write ${kind:target}, or $${ for a literal ${");
      return;
    }
    std::string body = s.substr(i + 2, end - i - 2);
    size_t colon = body.find(':');
    std::string kind = body.substr(0, colon);
    std::string target = colon == std::string::npos ? "" : body.substr(colon + 1);
    bool known = false;
    for (const auto& k : kKinds) known = known || k == kind;
    if (!known) {
      std::string msg = "unknown reference kind \"" + kind + "\" in \"${" + body + "}\"";
      std::string near = ClosestMatch(kind, kKinds);
      msg += near.empty() ? "; use secret, volume, port, runtime_dir or lab_dir"
                          : "; did you mean \"" + near + "\"?";
      ctx.Error(n, path, msg);
    } else if (kind != "runtime_dir" && kind != "lab_dir" && target.empty()) {
      ctx.Error(n, path, "reference \"${" + body + "}\" names no target: write ${" + kind +
                             ":NAME}");
    } else if ((kind == "runtime_dir" || kind == "lab_dir") && colon != std::string::npos) {
      ctx.Error(n, path, "reference \"${" + body + "}\" takes no target: write ${" + kind + "}");
    } else if (ctx.interpolations) {
      ctx.interpolations->push_back(Interpolation{kind, target, ctx.Loc(n), path, ctx.owner});
    }
    i = end + 1;
  }
}

bool ParseIntText(const std::string& s, long long& out) {
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (b != e && *b == '+') ++b;
  auto r = std::from_chars(b, e, out);
  return r.ec == std::errc() && r.ptr == e && b != e;
}

}  // namespace

bool ReadString(const Ctx& ctx, const Node& n, const std::string& path, std::string& out) {
  if (!n.IsScalar()) {
    ctx.Error(n, path, "expected a string, found " + Describe(n));
    return false;
  }
  out = n.Scalar();
  ScanInterpolations(ctx, n, path, out);
  return true;
}

bool ReadInt(const Ctx& ctx, const Node& n, const std::string& path, int& out, int min,
             int max) {
  long long v = 0;
  if (!n.IsScalar() || !ParseIntText(n.Scalar(), v)) {
    ctx.Error(n, path, "expected an integer, found " + Describe(n));
    return false;
  }
  if (v < min || v > max) {
    ctx.Error(n, path,
              "expected an integer " + std::to_string(min) + "-" + std::to_string(max) +
                  ", found " + n.Scalar());
    return false;
  }
  out = static_cast<int>(v);
  return true;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (char c : name)
    if (!alnum(c) && c != '-') return false;
  return true;
}

bool ReadName(const Ctx& ctx, const Node& n, const std::string& path, std::string& out) {
  if (!n.IsScalar()) {
    ctx.Error(n, path, "expected a name, found " + Describe(n));
    return false;
  }
  out = n.Scalar();
  if (!IsValidName(out)) {
    ctx.Error(n, path,
              "invalid name \"" + out +
                  "\": use lower-case letters, digits and '-' (at most 63), starting and ending "
                  "with a letter or digit");
    return false;
  }
  return true;
}

bool ReadStringList(const Ctx& ctx, const Node& n, const std::string& path,
                    std::vector<std::string>& out) {
  if (!n.IsSequence()) {
    ctx.Error(n, path, "expected a list of strings, found " + Describe(n));
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < n.size(); ++i) {
    std::string s;
    if (ReadString(ctx, n[i], path + "[" + std::to_string(i) + "]", s)) {
      out.push_back(std::move(s));
    } else {
      ok = false;
    }
  }
  return ok;
}

bool ReadCommand(const Ctx& ctx, const Node& n, const std::string& path,
                 std::vector<std::string>& out) {
  if (n.IsScalar()) {
    std::string s;
    if (!ReadString(ctx, n, path, s)) return false;
    out.push_back(s);
    return true;
  }
  return ReadStringList(ctx, n, path, out);
}

// ---------------------------------------------------------------------------
// MapReader
// ---------------------------------------------------------------------------

MapReader::MapReader(const Ctx& ctx, const Node& node, std::string path)
    : ctx_(ctx), node_(node), path_(std::move(path)) {
  if (!node.IsMap()) {
    ctx.Error(node, path_, "expected a map of settings, found " + Describe(node));
    return;
  }
  ok_ = true;
  std::set<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      ctx.Error(it->first, path_, "expected a plain key, found " + Describe(it->first));
      continue;
    }
    const std::string& key = it->first.Scalar();
    if (!seen.insert(key).second) {
      ctx.Error(it->first, Sub(key),
                "duplicate key \"" + key + "\": each key may appear once in a map; remove one");
    }
  }
}

MapReader::~MapReader() {
  if (!ok_) return;
  std::vector<std::string> known(known_.begin(), known_.end());
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    if (!it->first.IsScalar()) continue;
    const std::string& key = it->first.Scalar();
    if (known_.count(key)) continue;
    std::string msg = "unknown key \"" + key + "\"";
    std::string near = ClosestMatch(key, known);
    if (!near.empty()) {
      msg += "; did you mean \"" + near + "\"?";
    } else {
      msg += "; expected one of: " + Join(known, ", ");
    }
    ctx_.Error(it->first, Sub(key), msg);
  }
}

Node MapReader::Get(const std::string& key) {
  known_.insert(key);
  if (!ok_) return Node();
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
  }
  return Node();
}

bool MapReader::Has(const std::string& key) { return Get(key).IsDefined(); }

void MapReader::Require(const std::string& key, const std::string& what) {
  if (ok_ && !Has(key)) {
    ctx_.Error(node_, path_.empty() ? key : path_,
               "missing required key \"" + key + "\" (" + what + ")");
  }
}

bool MapReader::String(const std::string& key, std::string& out, bool required) {
  Node n = Get(key);
  if (!n.IsDefined()) {
    if (required) Require(key, "a string");
    return !required;
  }
  return ReadString(ctx_, n, Sub(key), out);
}

bool MapReader::Int(const std::string& key, int& out, int min, int max, bool required) {
  Node n = Get(key);
  if (!n.IsDefined()) {
    if (required) Require(key, "an integer");
    return !required;
  }
  return ReadInt(ctx_, n, Sub(key), out, min, max);
}

bool MapReader::OptInt(const std::string& key, std::optional<int>& out, int min, int max) {
  Node n = Get(key);
  if (!n.IsDefined()) return true;
  int v = 0;
  if (!ReadInt(ctx_, n, Sub(key), v, min, max)) return false;
  out = v;
  return true;
}

bool MapReader::Bool(const std::string& key, bool& out) {
  Node n = Get(key);
  if (!n.IsDefined()) return true;
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    if (s == "true" || s == "True" || s == "yes") {
      out = true;
      return true;
    }
    if (s == "false" || s == "False" || s == "no") {
      out = false;
      return true;
    }
  }
  ctx_.Error(n, Sub(key), "expected true or false, found " + Describe(n));
  return false;
}

bool MapReader::Double(const std::string& key, std::optional<double>& out, double min,
                       double max) {
  Node n = Get(key);
  if (!n.IsDefined()) return true;
  double v = 0;
  bool parsed = false;
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    parsed = r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(v);
  }
  if (!parsed) {
    ctx_.Error(n, Sub(key), "expected a number, found " + Describe(n));
    return false;
  }
  if (v < min || v > max) {
    ctx_.Error(n, Sub(key),
               "expected a number from " + fmt::format("{}", min) + " to " +
                   fmt::format("{}", max) + ", found " + n.Scalar());
    return false;
  }
  out = v;
  return true;
}

bool MapReader::StringList(const std::string& key, std::vector<std::string>& out) {
  Node n = Get(key);
  if (!n.IsDefined()) return true;
  return ReadStringList(ctx_, n, Sub(key), out);
}

bool MapReader::StringMap(const std::string& key, std::map<std::string, std::string>& out) {
  Node n = Get(key);
  if (!n.IsDefined()) return true;
  if (!n.IsMap()) {
    ctx_.Error(n, Sub(key), "expected a map of names to strings, found " + Describe(n));
    return false;
  }
  bool ok = true;
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (!it->first.IsScalar()) {
      ctx_.Error(it->first, Sub(key), "expected a plain key, found " + Describe(it->first));
      ok = false;
      continue;
    }
    std::string k = it->first.Scalar();
    std::string v;
    if (!ReadString(ctx_, it->second, Sub(key) + "." + k, v)) {
      ok = false;
      continue;
    }
    if (!out.emplace(k, v).second) {
      ctx_.Error(it->first, Sub(key) + "." + k, "duplicate key \"" + k + "\"; remove one");
      ok = false;
    }
  }
  return ok;
}

bool MapReader::Name(const std::string& key, std::string& out) {
  Node n = Get(key);
  if (!n.IsDefined()) {
    Require(key, "the element's unique name");
    return false;
  }
  return ReadName(ctx_, n, Sub(key), out);
}

bool MapReader::RefTo(const std::string& key, std::optional<Ref>& out) {
  Node n = Get(key);
  if (!n.IsDefined()) return true;
  Ref r;
  if (!ReadString(ctx_, n, Sub(key), r.name)) return false;
  r.loc = ctx_.Loc(n);
  r.path = Sub(key);
  out = std::move(r);
  return true;
}

bool MapReader::RefList(const std::string& key, std::vector<Ref>& out) {
  Node n = Get(key);
  if (!n.IsDefined()) return true;
  if (!n.IsSequence()) {
    ctx_.Error(n, Sub(key), "expected a list of names, found " + Describe(n));
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < n.size(); ++i) {
    Ref r;
    r.path = Sub(key) + "[" + std::to_string(i) + "]";
    r.loc = ctx_.Loc(n[i]);
    if (ReadString(ctx_, n[i], r.path, r.name)) {
      out.push_back(std::move(r));
    } else {
      ok = false;
    }
  }
  return ok;
}

namespace {
template <typename T, typename Parser>
bool ParseValue(const Ctx& ctx, const Node& n, const std::string& path, Parser parse,
                std::optional<T>& out) {
  if (!n.IsScalar()) {
    ctx.Error(n, path, "expected a scalar value, found " + Describe(n));
    return false;
  }
  auto r = parse(n.Scalar());
  if (!r.ok()) {
    ctx.Error(n, path, r.status().message());
    return false;
  }
  out = std::move(r).value();
  return true;
}
}  // namespace

bool MapReader::DurationField(const std::string& key, Duration& out) {
  std::optional<Duration> d;
  if (!OptDuration(key, d)) return false;
  if (d) out = *d;
  return true;
}

bool MapReader::OptDuration(const std::string& key, std::optional<Duration>& out) {
  Node n = Get(key);
  if (!n.IsDefined()) return true;
  return ParseValue<Duration>(ctx_, n, Sub(key), ParseDuration, out);
}

bool MapReader::OptSize(const std::string& key, std::optional<ByteSize>& out) {
  Node n = Get(key);
  if (!n.IsDefined()) return true;
  return ParseValue<ByteSize>(ctx_, n, Sub(key), ParseByteSize, out);
}

bool MapReader::OptCron(const std::string& key, std::optional<CronSchedule>& out) {
  Node n = Get(key);
  if (!n.IsDefined()) return true;
  return ParseValue<CronSchedule>(ctx_, n, Sub(key), ParseCron, out);
}

void MapReader::List(const std::string& key,
                     const std::function<void(const Node&, const std::string&)>& fn) {
  Node n = Get(key);
  if (!n.IsDefined() || n.IsNull()) return;
  if (!n.IsSequence()) {
    ctx_.Error(n, Sub(key), "expected a list, found " + Describe(n));
    return;
  }
  for (size_t i = 0; i < n.size(); ++i) fn(n[i], Sub(key) + "[" + std::to_string(i) + "]");
}

// ---------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------

namespace {

std::string Idx(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

void DecodeLabInfo(const Ctx& ctx, const Node& n, Lab& lab, Singletons& seen) {
  if (seen.lab) {
    ctx.Error(n, "lab",
              "the lab section is declared twice (first at " + seen.lab->ToString() +
                  "); keep one");
    return;
  }
  seen.lab = ctx.Loc(n);
  MapReader m(ctx, n, "lab");
  lab.lab.loc = ctx.Loc(n);
  m.Name("name", lab.lab.name);
  m.String("domain", lab.lab.domain);
  m.String("description", lab.lab.description);
}

void DecodeHost(const Ctx& ctx, const Node& n, const std::string& path, Lab& lab) {
  MapReader m(ctx, n, path);
  if (!m.ok()) return;
  Host h;
  h.loc = ctx.Loc(n);
  h.path = path;
  m.Name("name", h.name);
  m.String("address", h.address, true);
  m.RefTo("network", h.network);
  m.StringList("roles", h.roles);
  Node res = m.Get("resources");
  if (res.IsDefined()) {
    MapReader r(ctx, res, m.Sub("resources"));
    r.Double("cpu", h.resources.cpu, 0.001, 1e6);
    r.OptSize("memory", h.resources.memory);
    r.List("gpus", [&](const Node& g, const std::string& gp) {
      MapReader gm(ctx, g, gp);
      if (!gm.ok()) return;
      GpuDevices dev;
      dev.loc = ctx.Loc(g);
      dev.path = gp;
      gm.String("vendor", dev.vendor, true);
      gm.String("model", dev.model);
      gm.Int("count", dev.count, 1, 64);
      if (!dev.vendor.empty() && dev.vendor != "nvidia" && dev.vendor != "amd" &&
          dev.vendor != "intel") {
        ctx.Error(gm.Get("vendor"), gm.Sub("vendor"),
                  "expected a GPU vendor nvidia, amd or intel, found \"" + dev.vendor + "\"");
      }
      h.resources.gpus.push_back(std::move(dev));
    });
  }
  lab.hosts.push_back(std::move(h));
}

void DecodeNetwork(const Ctx& ctx, const Node& n, const std::string& path, Lab& lab) {
  MapReader m(ctx, n, path);
  if (!m.ok()) return;
  Network net;
  net.loc = ctx.Loc(n);
  net.path = path;
  m.Name("name", net.name);
  m.OptInt("vlan", net.vlan, 1, 4094);
  Node subnet = m.Get("subnet");
  if (subnet.IsDefined()) ParseValue<Cidr>(ctx, subnet, m.Sub("subnet"), ParseCidr, net.subnet);
  Node subnet6 = m.Get("subnet6");
  if (subnet6.IsDefined()) {
    if (ParseValue<Cidr>(ctx, subnet6, m.Sub("subnet6"), ParseCidr, net.subnet6) &&
        !net.subnet6->network.v6) {
      ctx.Error(subnet6, m.Sub("subnet6"),
                "expected an IPv6 prefix like \"fd00:20::/64\", found \"" + subnet6.Scalar() +
                    "\"; put IPv4 prefixes in subnet");
    }
  }
  Node gw = m.Get("gateway");
  if (gw.IsDefined()) ParseValue<IpAddress>(ctx, gw, m.Sub("gateway"), ParseIpAddress, net.gateway);
  m.String("dhcp_range", net.dhcp_range);
  m.String("parent", net.parent);
  std::optional<Ref> zone;
  m.RefTo("zone", zone);
  if (zone) {
    net.zone = *zone;
  } else {
    m.Require("zone", "the firewall zone this network belongs to");
  }
  if (!m.Has("subnet")) m.Require("subnet", "an IPv4 or IPv6 prefix such as 10.20.0.0/24");
  lab.networks.push_back(std::move(net));
}

void DecodeZones(const Ctx& ctx, const Node& n, Lab& lab) {
  if (n.IsNull()) return;  // "zones:" with nothing under it
  if (!n.IsSequence()) {
    ctx.Error(n, "zones", "expected a list of zone names, found " + Describe(n));
    return;
  }
  for (size_t i = 0; i < n.size(); ++i) {
    Zone z;
    z.loc = ctx.Loc(n[i]);
    z.path = Idx("zones", i);
    if (n[i].IsMap()) {
      MapReader m(ctx, n[i], z.path);
      m.Name("name", z.name);
      m.String("description", z.description);
    } else if (!ReadName(ctx, n[i], z.path, z.name)) {
      continue;
    }
    lab.zones.push_back(std::move(z));
  }
}

bool ParseEndpoint(const Ctx& ctx, const Node& n, const std::string& path, Endpoint& ep) {
  std::string s;
  if (!ReadString(ctx, n, path, s)) return false;
  ep.loc = ctx.Loc(n);
  ep.path = path;
  if (s == "any" || s == "wan") {
    ep.kind = s;
    return true;
  }
  size_t colon = s.find(':');
  if (colon == std::string::npos) {
    ep.kind = "zone";
    ep.name = s;
    return true;
  }
  ep.kind = s.substr(0, colon);
  ep.name = s.substr(colon + 1);
  static const std::vector<std::string> kKinds = {"zone", "network", "service", "host", "alias"};
  for (const auto& k : kKinds)
    if (k == ep.kind) return true;
  std::string near = ClosestMatch(ep.kind, kKinds);
  ctx.Error(n, path,
            "expected an endpoint (any, wan, ZONE, or zone:|network:|service:|host:|alias:NAME), "
            "found \"" + s + "\"" + (near.empty() ? "" : "; did you mean \"" + near + ":\"?"));
  return false;
}

bool ParseVerdict(const Ctx& ctx, const Node& n, const std::string& path, Verdict& v) {
  std::string s;
  if (!ReadString(ctx, n, path, s)) return false;
  if (s == "allow" || s == "accept") {
    v = Verdict::kAllow;
  } else if (s == "deny" || s == "drop") {
    v = Verdict::kDeny;
  } else if (s == "reject") {
    v = Verdict::kReject;
  } else {
    ctx.Error(n, path, "expected allow, deny or reject, found \"" + s + "\"");
    return false;
  }
  return true;
}

bool ReadPortSpec(const Ctx& ctx, const Node& n, const std::string& path, PortSpec& out) {
  if (!n.IsScalar()) {
    ctx.Error(n, path, "expected a port like 443 or 443/tcp, found " + Describe(n));
    return false;
  }
  auto r = ParsePortSpec(n.Scalar());
  if (!r.ok()) {
    ctx.Error(n, path, r.status().message());
    return false;
  }
  out = *r;
  return true;
}

void ReadPortList(const Ctx& ctx, MapReader& m, const std::string& key,
                  std::vector<PortSpec>& out) {
  m.List(key, [&](const Node& p, const std::string& pp) {
    PortSpec spec;
    if (ReadPortSpec(ctx, p, pp, spec)) out.push_back(spec);
  });
}

void DecodeEndpointPair(const Ctx& ctx, MapReader& m, Endpoint& from, Endpoint& to) {
  Node f = m.Get("from");
  Node t = m.Get("to");
  if (f.IsDefined()) ParseEndpoint(ctx, f, m.Sub("from"), from);
  else m.Require("from", "where the traffic comes from");
  if (t.IsDefined()) ParseEndpoint(ctx, t, m.Sub("to"), to);
  else m.Require("to", "where the traffic goes");
}

void DecodePolicy(const Ctx& ctx, const Node& n, Lab& lab, Singletons& seen) {
  MapReader m(ctx, n, "policy");
  if (!m.ok()) return;
  lab.policy.loc = ctx.Loc(n);
  Node def = m.Get("default");
  if (def.IsDefined()) {
    if (seen.policy_default) {
      ctx.Error(def, "policy.default",
                "the default policy is set twice (first at " + seen.policy_default->ToString() +
                    "); keep one");
    } else {
      seen.policy_default = ctx.Loc(def);
      ParseVerdict(ctx, def, "policy.default", lab.policy.default_action);
    }
  }
  m.List("aliases", [&](const Node& a, const std::string& ap) {
    MapReader am(ctx, a, ap);
    if (!am.ok()) return;
    Alias alias;
    alias.loc = ctx.Loc(a);
    alias.path = ap;
    am.Name("name", alias.name);
    am.StringList("addresses", alias.addresses);
    for (size_t i = 0; i < alias.addresses.size(); ++i) {
      const std::string& addr = alias.addresses[i];
      bool ok = addr.find('/') != std::string::npos ? ParseCidr(addr).ok()
                                                    : ParseIpAddress(addr).ok();
      if (!ok) {
        ctx.Error(am.Get("addresses")[i], Idx(am.Sub("addresses"), i),
                  "expected an IP address or CIDR, found \"" + addr + "\"");
      }
    }
    lab.policy.aliases.push_back(std::move(alias));
  });
  m.List("rules", [&](const Node& r, const std::string& rp) {
    MapReader rm(ctx, r, rp);
    if (!rm.ok()) return;
    PolicyRule rule;
    rule.loc = ctx.Loc(r);
    rule.path = rp;
    rm.String("name", rule.name);
    DecodeEndpointPair(ctx, rm, rule.from, rule.to);
    ReadPortList(ctx, rm, "ports", rule.ports);
    Node action = rm.Get("action");
    if (action.IsDefined()) ParseVerdict(ctx, action, rm.Sub("action"), rule.action);
    else rm.Require("action", "allow, deny or reject");
    rm.Bool("log", rule.log);
    lab.policy.rules.push_back(std::move(rule));
  });
  m.List("forwards", [&](const Node& f, const std::string& fp) {
    MapReader fm(ctx, f, fp);
    if (!fm.ok()) return;
    PortForward fwd;
    fwd.loc = ctx.Loc(f);
    fwd.path = fp;
    DecodeEndpointPair(ctx, fm, fwd.from, fwd.to);
    Node port = fm.Get("port");
    if (port.IsDefined()) ReadPortSpec(ctx, port, fm.Sub("port"), fwd.port);
    else fm.Require("port", "the port to forward, e.g. 51820/udp");
    fm.OptInt("to_port", fwd.to_port, 1, 65535);
    lab.policy.forwards.push_back(std::move(fwd));
  });
  m.RefList("masquerade", lab.policy.masquerade);
  m.List("invariants", [&](const Node& inv, const std::string& ip) {
    MapReader im(ctx, inv, ip);
    if (!im.ok()) return;
    bool has_reach = im.Has("must_reach");
    bool has_not = im.Has("must_not_reach");
    if (has_reach == has_not) {
      ctx.Error(inv, ip, "expected exactly one of must_reach or must_not_reach");
      return;
    }
    Invariant invariant;
    invariant.must_reach = has_reach;
    invariant.loc = ctx.Loc(inv);
    invariant.path = ip;
    std::string key = has_reach ? "must_reach" : "must_not_reach";
    MapReader body(ctx, im.Get(key), im.Sub(key));
    if (!body.ok()) return;
    DecodeEndpointPair(ctx, body, invariant.from, invariant.to);
    Node port = body.Get("port");
    if (port.IsDefined()) {
      PortSpec ps;
      if (ReadPortSpec(ctx, port, body.Sub("port"), ps)) invariant.port = ps;
    }
    lab.policy.invariants.push_back(std::move(invariant));
  });
}

void DecodeServicePorts(const Ctx& ctx, MapReader& m, Service& svc) {
  m.List("ports", [&](const Node& p, const std::string& pp) {
    PortMapping pm;
    pm.loc = ctx.Loc(p);
    pm.path = pp;
    if (p.IsMap()) {
      MapReader pmr(ctx, p, pp);
      pmr.Int("host", pm.host, 1, 65535);
      pmr.Int("container", pm.container, 1, 65535);
      std::string proto = "tcp";
      pmr.String("protocol", proto);
      pmr.String("host_ip", pm.host_ip);
      if (pm.host == 0 && pm.container == 0) {
        ctx.Error(p, pp, "a port mapping needs host, container or both");
        return;
      }
      if (pm.host == 0) pm.host = pm.container;
      if (pm.container == 0) pm.container = pm.host;
      for (char& c : proto) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (proto == "udp") {
        pm.protocol = Protocol::kUdp;
      } else if (proto != "tcp") {
        ctx.Error(pmr.Get("protocol"), pmr.Sub("protocol"),
                  "expected tcp or udp, found \"" + proto + "\"");
      }
      if (!pm.host_ip.empty() && !ParseIpAddress(pm.host_ip).ok()) {
        ctx.Error(pmr.Get("host_ip"), pmr.Sub("host_ip"),
                  "expected an IP address to bind, found \"" + pm.host_ip + "\"");
      }
    } else {
      PortSpec ps;
      if (!ReadPortSpec(ctx, p, pp, ps)) return;
      pm.host = pm.container = ps.number;
      pm.protocol = ps.protocol;
    }
    svc.ports.push_back(pm);
  });
}

void DecodeServiceVolumes(const Ctx& ctx, MapReader& m, Service& svc) {
  m.List("volumes", [&](const Node& v, const std::string& vp) {
    VolumeMount vm;
    vm.loc = ctx.Loc(v);
    vm.path = vp;
    if (v.IsMap()) {
      MapReader vmr(ctx, v, vp);
      std::optional<Ref> vol;
      vmr.RefTo("name", vol);
      vm.volume = vol;
      vmr.String("source", vm.source);
      vmr.String("target", vm.target);
      vmr.Bool("read_only", vm.read_only);
    } else {
      std::string s;
      if (!ReadString(ctx, v, vp, s)) return;
      // NAME | NAME:/target | /host/path:/target[:ro]
      std::vector<std::string> parts;
      size_t start = 0;
      while (true) {
        size_t c = s.find(':', start);
        parts.push_back(s.substr(start, c - start));
        if (c == std::string::npos) break;
        start = c + 1;
      }
      if (parts.size() == 3 && (parts[2] == "ro" || parts[2] == "rw")) {
        vm.read_only = parts[2] == "ro";
        parts.pop_back();
      }
      if (parts.size() > 2 || parts[0].empty()) {
        ctx.Error(v, vp,
                  "expected NAME, NAME:/target or /host/path:/target[:ro], found \"" + s + "\"");
        return;
      }
      if (parts[0][0] == '/') {
        vm.source = parts[0];
      } else {
        vm.volume = Ref{parts[0], ctx.Loc(v), vp};
      }
      if (parts.size() == 2) vm.target = parts[1];
    }
    if (vm.volume.has_value() == !vm.source.empty()) {
      ctx.Error(v, vp, "a volume mount needs exactly one of name (a declared volume) or source");
      return;
    }
    if (!vm.source.empty() && vm.source[0] != '/') {
      ctx.Error(v, vp, "bind mount source must be an absolute path, found \"" + vm.source + "\"");
      return;
    }
    if (!vm.target.empty() && vm.target[0] != '/') {
      ctx.Error(v, vp, "mount target must be an absolute path, found \"" + vm.target + "\"");
      return;
    }
    svc.volumes.push_back(std::move(vm));
  });
}

void DecodeHealth(const Ctx& ctx, const Node& n, const std::string& path, HealthCheck& h) {
  MapReader m(ctx, n, path);
  if (!m.ok()) return;
  h.loc = ctx.Loc(n);
  int kinds = 0;
  Node http = m.Get("http");
  if (http.IsDefined()) {
    ++kinds;
    h.kind = HealthCheck::Kind::kHttp;
    if (http.IsScalar()) {
      ReadString(ctx, http, m.Sub("http"), h.http.path);
    } else {
      MapReader hm(ctx, http, m.Sub("http"));
      hm.String("path", h.http.path);
      hm.String("scheme", h.http.scheme);
      hm.Int("port", h.http.port, 1, 65535);
      hm.Int("status", h.http.status, 100, 599);
      hm.String("body_contains", h.http.body_contains);
      if (h.http.scheme != "http" && h.http.scheme != "https") {
        ctx.Error(hm.Get("scheme"), hm.Sub("scheme"),
                  "expected http or https, found \"" + h.http.scheme + "\"");
      }
    }
    if (h.http.path.empty() || h.http.path[0] != '/') {
      ctx.Error(http, m.Sub("http"), "http check path must start with '/', found \"" +
                                         h.http.path + "\"");
    }
  }
  Node tcp = m.Get("tcp");
  if (tcp.IsDefined()) {
    ++kinds;
    h.kind = HealthCheck::Kind::kTcp;
    ReadInt(ctx, tcp, m.Sub("tcp"), h.tcp_port, 1, 65535);
  }
  Node exec = m.Get("exec");
  if (exec.IsDefined()) {
    ++kinds;
    h.kind = HealthCheck::Kind::kExec;
    ReadCommand(ctx, exec, m.Sub("exec"), h.exec);
  }
  m.DurationField("interval", h.interval);
  m.DurationField("timeout", h.timeout);
  m.DurationField("start_period", h.start_period);
  m.Int("retries", h.retries, 1, 100);
  if (kinds != 1) {
    ctx.Error(n, path,
              kinds == 0 ? "a health check needs one of http, tcp or exec"
                         : "a health check takes only one of http, tcp or exec");
  }
}

void DecodeServiceBackup(const Ctx& ctx, const Node& n, const std::string& path,
                         Service& svc) {
  ServiceBackup b;
  if (n.IsScalar()) {  // shorthand: backup: critical
    b.policy = Ref{n.Scalar(), ctx.Loc(n), path};
    svc.backup = std::move(b);
    return;
  }
  MapReader m(ctx, n, path);
  if (!m.ok()) return;
  m.RefTo("policy", b.policy);
  if (!b.policy) m.Require("policy", "the name of a backup policy");
  Node hooks = m.Get("hooks");
  if (hooks.IsDefined()) {
    MapReader hm(ctx, hooks, m.Sub("hooks"));
    Node pre = hm.Get("pre");
    if (pre.IsDefined()) ReadCommand(ctx, pre, hm.Sub("pre"), b.pre_hook);
    Node post = hm.Get("post");
    if (post.IsDefined()) ReadCommand(ctx, post, hm.Sub("post"), b.post_hook);
  }
  Node canary = m.Get("canary");
  if (canary.IsDefined()) {
    MapReader cm(ctx, canary, m.Sub("canary"));
    Canary c;
    Node exec = cm.Get("exec");
    if (exec.IsDefined()) ReadCommand(ctx, exec, cm.Sub("exec"), c.exec);
    else cm.Require("exec", "the command that proves restored data is good");
    cm.String("expect", c.expect);
    b.canary = std::move(c);
  }
  m.RefList("volumes", b.volumes);
  m.StringList("paths", b.paths);
  svc.backup = std::move(b);
}

void DecodeService(Ctx ctx, const Node& n, const std::string& path, Lab& lab) {
  MapReader m(ctx, n, path);
  if (!m.ok()) return;
  Service svc;
  svc.loc = ctx.Loc(n);
  svc.path = path;
  m.Name("name", svc.name);
  ctx.owner = svc.name;
  m.String("description", svc.description);
  std::string driver = "exec";
  m.String("driver", driver);
  if (driver == "exec") {
    svc.driver = Driver::kExec;
  } else if (driver == "podman") {
    svc.driver = Driver::kPodman;
  } else if (driver == "kubernetes") {
    svc.driver = Driver::kKubernetes;
  } else {
    std::string near = ClosestMatch(driver, {"exec", "podman", "kubernetes"});
    ctx.Error(m.Get("driver"), m.Sub("driver"),
              "expected a driver exec, podman or kubernetes, found \"" + driver + "\"" +
                  (near.empty() ? "" : "; did you mean \"" + near + "\"?"));
    // Carry on with the likely intent so later checks do not pile on.
    if (near == "podman" || (near.empty() && m.Has("image"))) svc.driver = Driver::kPodman;
    if (near == "kubernetes") svc.driver = Driver::kKubernetes;
  }
  m.String("image", svc.image);
  m.String("command", svc.command);
  m.StringList("args", svc.args);
  m.StringMap("env", svc.env);
  m.String("working_dir", svc.working_dir);
  m.String("user", svc.user);
  DecodeServicePorts(ctx, m, svc);
  DecodeServiceVolumes(ctx, m, svc);
  m.RefList("depends_on", svc.depends_on);
  Node health = m.Get("health");
  if (health.IsDefined()) DecodeHealth(ctx, health, m.Sub("health"), svc.health);
  Node res = m.Get("resources");
  if (res.IsDefined()) {
    MapReader rm(ctx, res, m.Sub("resources"));
    rm.Double("cpu", svc.resources.cpu, 0.001, 1e6);
    rm.OptSize("memory", svc.resources.memory);
    rm.Int("gpus", svc.resources.gpus, 0, 64);
    rm.String("gpu_vendor", svc.resources.gpu_vendor);
  }
  m.RefTo("host", svc.host);
  m.RefTo("network", svc.network);
  Node backup = m.Get("backup");
  if (backup.IsDefined()) DecodeServiceBackup(ctx, backup, m.Sub("backup"), svc);
  std::string restart = "always";
  m.String("restart", restart);
  if (restart == "always") {
    svc.restart = RestartPolicy::kAlways;
  } else if (restart == "on-failure") {
    svc.restart = RestartPolicy::kOnFailure;
  } else if (restart == "never" || restart == "no") {
    svc.restart = RestartPolicy::kNever;
  } else {
    ctx.Error(m.Get("restart"), m.Sub("restart"),
              "expected always, on-failure or never, found \"" + restart + "\"");
  }
  // sandbox: true | { network: host | private }
  Node sandbox = m.Get("sandbox");
  if (sandbox.IsMap()) {
    MapReader sm(ctx, sandbox, m.Sub("sandbox"));
    std::string network = "host";
    sm.String("network", network);
    svc.sandbox = true;
    if (network == "private") {
      svc.sandbox_private_network = true;
    } else if (network != "host") {
      ctx.Error(sm.Get("network"), sm.Sub("network"),
                "expected host or private, found \"" + network + "\"");
    }
  } else {
    m.Bool("sandbox", svc.sandbox);
  }
  m.StringMap("secret_files", svc.secret_files);
  for (const auto& [name, content] : svc.secret_files) {
    bool ok = !name.empty() && name[0] != '.' &&
              name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
                  std::string::npos;
    if (!ok) {
      ctx.Error(m.Get("secret_files"), m.Sub("secret_files") + "." + name,
                "secret file name \"" + name +
                    "\" must be a plain file name (letters, digits, '.', '_', '-', not starting "
                    "with '.'); it is written to ${runtime_dir}/secrets/NAME");
    }
  }
  m.StringMap("labels", svc.labels);
  lab.services.push_back(std::move(svc));
}

void DecodeVolume(const Ctx& ctx, const Node& n, const std::string& path, Lab& lab) {
  MapReader m(ctx, n, path);
  if (!m.ok()) return;
  Volume v;
  v.loc = ctx.Loc(n);
  v.spec_path = path;
  m.Name("name", v.name);
  m.RefTo("host", v.host);
  m.String("path", v.path);
  m.OptSize("size", v.size);
  if (Node mode = m.Get("mode"); mode.IsDefined() && ReadString(ctx, mode, m.Sub("mode"), v.mode)) {
    bool octal = v.mode.size() >= 3 && v.mode.size() <= 4 &&
                 v.mode.find_first_not_of("01234567") == std::string::npos;
    if (!octal) {
      ctx.Error(mode, m.Sub("mode"),
                "expected permission bits in octal, like \"0700\" or \"0750\", found \"" + v.mode + "\"");
    } else if (v.mode.size() == 3) {
      v.mode = "0" + v.mode;
    }
  }
  lab.volumes.push_back(std::move(v));
}

void DecodeBackups(const Ctx& ctx, const Node& n, Lab& lab) {
  MapReader m(ctx, n, "backups");
  if (!m.ok()) return;
  m.List("repositories", [&](const Node& r, const std::string& rp) {
    MapReader rm(ctx, r, rp);
    if (!rm.ok()) return;
    Repository repo;
    repo.loc = ctx.Loc(r);
    repo.path = rp;
    rm.Name("name", repo.name);
    rm.String("url", repo.url, true);
    rm.String("medium", repo.medium);
    rm.Bool("offsite", repo.offsite);
    rm.String("credentials", repo.credentials);
    rm.String("password", repo.password);
    rm.StringMap("options", repo.options);
    rm.String("ca_file", repo.ca_file);
    lab.backups.repositories.push_back(std::move(repo));
  });
  m.List("policies", [&](const Node& p, const std::string& pp) {
    MapReader pm(ctx, p, pp);
    if (!pm.ok()) return;
    BackupPolicy bp;
    bp.loc = ctx.Loc(p);
    bp.path = pp;
    pm.Name("name", bp.name);
    pm.OptCron("schedule", bp.schedule);
    std::optional<Ref> repo;
    pm.RefTo("repository", repo);
    if (repo) bp.repository = *repo;
    else pm.Require("repository", "the name of the primary repository");
    pm.RefList("copies", bp.copies);
    Node retain = pm.Get("retain");
    if (retain.IsDefined()) {
      MapReader rm(ctx, retain, pm.Sub("retain"));
      rm.Int("last", bp.retain.last, 0, 100000);
      rm.Int("hourly", bp.retain.hourly, 0, 100000);
      rm.Int("daily", bp.retain.daily, 0, 100000);
      rm.Int("weekly", bp.retain.weekly, 0, 100000);
      rm.Int("monthly", bp.retain.monthly, 0, 100000);
      rm.Int("yearly", bp.retain.yearly, 0, 100000);
      rm.OptDuration("within", bp.retain.within);
    }
    pm.OptDuration("rpo", bp.rpo);
    pm.String("three_two_one", bp.three_two_one);
    if (bp.three_two_one != "enforce" && bp.three_two_one != "warn" &&
        bp.three_two_one != "off") {
      ctx.Error(pm.Get("three_two_one"), pm.Sub("three_two_one"),
                "expected enforce, warn or off, found \"" + bp.three_two_one + "\"");
    }
    pm.OptSize("bandwidth", bp.bandwidth);
    pm.String("check", bp.check);
    if (!bp.check.empty()) {
      const std::string& c = bp.check;
      bool ratio = c.find('/') != std::string::npos;
      bool percent = !c.empty() && c.back() == '%';
      bool size = !ratio && !percent && ParseByteSize(c).ok();
      if (!ratio && !percent && !size) {
        ctx.Error(pm.Get("check"), pm.Sub("check"),
                  "expected how much data to read back after each run: \"1/7\" (one part in 7), "
                  "\"5%\" or a size like \"500MiB\"; found \"" + c + "\"");
      }
    }
    Node drill = pm.Get("drill");
    if (drill.IsDefined()) {
      MapReader dm(ctx, drill, pm.Sub("drill"));
      DrillPolicy d;
      dm.OptCron("schedule", d.schedule);
      dm.RefTo("from", d.from);
      dm.OptDuration("rto", d.rto);
      bp.drill = std::move(d);
    }
    lab.backups.policies.push_back(std::move(bp));
  });
}

void DecodeProbe(const Ctx& ctx, const Node& n, const std::string& path, Lab& lab) {
  MapReader m(ctx, n, path);
  if (!m.ok()) return;
  Probe p;
  p.loc = ctx.Loc(n);
  p.path = path;
  m.Name("name", p.name);
  int kinds = 0;
  Node http = m.Get("http");
  if (http.IsDefined()) {
    ++kinds;
    p.type = "http";
    if (http.IsScalar()) {
      ReadString(ctx, http, m.Sub("http"), p.target);
    } else {
      MapReader hm(ctx, http, m.Sub("http"));
      hm.String("url", p.target, true);
      hm.Int("status", p.status, 100, 599);
      hm.String("body_contains", p.body_contains);
      hm.OptInt("cert_days", p.cert_days, 0, 3650);
    }
    if (!p.target.empty() && !StartsWith(p.target, "http://") &&
        !StartsWith(p.target, "https://")) {
      ctx.Error(http, m.Sub("http"),
                "expected a URL starting with http:// or https://, found \"" + p.target + "\"");
    }
  }
  for (const char* simple : {"tcp", "icmp", "dns"}) {
    Node s = m.Get(simple);
    if (!s.IsDefined()) continue;
    ++kinds;
    p.type = simple;
    ReadString(ctx, s, m.Sub(simple), p.target);
  }
  Node exec = m.Get("exec");
  if (exec.IsDefined()) {
    ++kinds;
    p.type = "exec";
    ReadCommand(ctx, exec, m.Sub("exec"), p.exec);
  }
  if (kinds != 1) {
    ctx.Error(n, path,
              kinds == 0 ? "a probe needs one of http, tcp, icmp, dns or exec"
                         : "a probe takes only one of http, tcp, icmp, dns or exec");
  }
  m.DurationField("interval", p.interval);
  m.DurationField("timeout", p.timeout);
  m.Int("retries", p.retries, 1, 100);
  m.RefTo("service", p.service);
  lab.monitoring.probes.push_back(std::move(p));
}

void DecodeMonitoring(const Ctx& ctx, const Node& n, Lab& lab) {
  MapReader m(ctx, n, "monitoring");
  if (!m.ok()) return;
  m.List("probes", [&](const Node& p, const std::string& pp) { DecodeProbe(ctx, p, pp, lab); });
  m.List("alerts", [&](const Node& a, const std::string& ap) {
    MapReader am(ctx, a, ap);
    if (!am.ok()) return;
    AlertRule rule;
    rule.loc = ctx.Loc(a);
    rule.path = ap;
    // Alert names follow Prometheus (CamelCase allowed), so not ReadName.
    am.String("name", rule.name, true);
    am.String("when", rule.when, true);
    am.OptDuration("for", rule.for_duration);
    am.String("severity", rule.severity);
    if (rule.severity != "critical" && rule.severity != "warning" && rule.severity != "info") {
      ctx.Error(am.Get("severity"), am.Sub("severity"),
                "expected critical, warning or info, found \"" + rule.severity + "\"");
    }
    am.StringMap("labels", rule.labels);
    am.StringMap("annotations", rule.annotations);
    lab.monitoring.alerts.push_back(std::move(rule));
  });
  m.List("notify", [&](const Node& no, const std::string& np) {
    MapReader nm(ctx, no, np);
    if (!nm.ok()) return;
    Notifier notifier;
    notifier.loc = ctx.Loc(no);
    notifier.path = np;
    int kinds = 0;
    for (const char* type : {"alertmanager", "webhook"}) {
      std::string url;
      if (nm.Has(type)) {
        ++kinds;
        notifier.type = type;
        nm.String(type, notifier.url);
      }
    }
    nm.String("preset", notifier.preset);
    if (kinds != 1) {
      ctx.Error(no, np, "a notifier needs exactly one of alertmanager or webhook (a URL)");
    } else if (!StartsWith(notifier.url, "http://") && !StartsWith(notifier.url, "https://")) {
      ctx.Error(nm.Get(notifier.type), nm.Sub(notifier.type),
                "expected a URL starting with http:// or https://, found \"" + notifier.url +
                    "\"");
    }
    lab.monitoring.notify.push_back(std::move(notifier));
  });
}

void DecodeSecrets(const Ctx& ctx, const Node& n, Lab& lab) {
  MapReader m(ctx, n, "secrets");
  if (!m.ok()) return;
  m.List("files", [&](const Node& f, const std::string& fp) {
    SecretFile sf;
    sf.loc = ctx.Loc(f);
    sf.path = fp;
    if (ReadString(ctx, f, fp, sf.file)) lab.secrets.files.push_back(std::move(sf));
  });
  m.StringList("recipients", lab.secrets.recipients);
  m.String("identity", lab.secrets.identity);
  if (m.Get("identity").IsDefined()) lab.secrets.identity_loc = ctx.Loc(m.Get("identity"));
  Node rec = m.Get("recipients");
  for (size_t i = 0; i < lab.secrets.recipients.size(); ++i) {
    const std::string& r = lab.secrets.recipients[i];
    if (!StartsWith(r, "age1") || r.size() != 62) {
      ctx.Error(rec[i], Idx("secrets.recipients", i),
                "expected an age X25519 recipient (age1 followed by 58 characters), found \"" +
                    r + "\"");
    }
  }
}

void DecodeVpn(const Ctx& ctx, const Node& n, Lab& lab, Singletons& seen) {
  MapReader m(ctx, n, "vpn");
  if (!m.ok()) return;
  Node wg = m.Get("wireguard");
  if (!wg.IsDefined()) return;
  if (seen.wireguard) {
    ctx.Error(wg, "vpn.wireguard",
              "vpn.wireguard is declared twice (first at " + seen.wireguard->ToString() +
                  "); keep one");
    return;
  }
  seen.wireguard = ctx.Loc(wg);
  MapReader w(ctx, wg, "vpn.wireguard");
  if (!w.ok()) return;
  Wireguard g;
  g.loc = ctx.Loc(wg);
  w.Int("listen", g.listen, 1, 65535);
  Node net = w.Get("network");
  if (net.IsDefined()) {
    MapReader nm(ctx, net, w.Sub("network"));
    Node subnet = nm.Get("subnet");
    if (subnet.IsDefined()) ParseValue<Cidr>(ctx, subnet, nm.Sub("subnet"), ParseCidr, g.subnet);
    else nm.Require("subnet", "the tunnel's address range, e.g. 10.99.0.0/24");
    std::optional<Ref> zone;
    nm.RefTo("zone", zone);
    if (zone) g.zone = *zone;
    else nm.Require("zone", "the firewall zone of VPN clients");
  } else {
    w.Require("network", "{ subnet, zone } for the tunnel");
  }
  w.String("endpoint", g.endpoint);
  w.List("peers", [&](const Node& p, const std::string& pp) {
    MapReader pm(ctx, p, pp);
    if (!pm.ok()) return;
    WireguardPeer peer;
    peer.loc = ctx.Loc(p);
    peer.path = pp;
    pm.Name("name", peer.name);
    Node addr = pm.Get("address");
    if (addr.IsDefined()) {
      ParseValue<IpAddress>(ctx, addr, pm.Sub("address"), ParseIpAddress, peer.address);
    }
    pm.String("public_key", peer.public_key);
    pm.StringList("allowed_ips", peer.allowed_ips);
    g.peers.push_back(std::move(peer));
  });
  lab.vpn.wireguard = std::move(g);
}

}  // namespace

void DecodeDocument(const Ctx& ctx, const Node& root, Lab& lab, Singletons& seen) {
  if (!root.IsDefined() || root.IsNull()) return;  // an empty file is allowed
  MapReader m(ctx, root, "");
  if (!m.ok()) return;
  // A section key with nothing under it ("policy:") is the same as leaving it out.
  auto section = [&](const char* key) {
    Node v = m.Get(key);
    return v.IsNull() ? Node() : v;
  };
  Node n;
  if ((n = m.Get("lab")).IsDefined()) DecodeLabInfo(ctx, n, lab, seen);
  m.List("hosts", [&](const Node& h, const std::string& p) { DecodeHost(ctx, h, p, lab); });
  m.List("networks",
         [&](const Node& x, const std::string& p) { DecodeNetwork(ctx, x, p, lab); });
  if ((n = m.Get("zones")).IsDefined()) DecodeZones(ctx, n, lab);
  if ((n = section("policy")).IsDefined()) DecodePolicy(ctx, n, lab, seen);
  m.List("services",
         [&](const Node& x, const std::string& p) { DecodeService(ctx, x, p, lab); });
  m.List("volumes", [&](const Node& x, const std::string& p) { DecodeVolume(ctx, x, p, lab); });
  if ((n = section("backups")).IsDefined()) DecodeBackups(ctx, n, lab);
  if ((n = section("monitoring")).IsDefined()) DecodeMonitoring(ctx, n, lab);
  if ((n = section("secrets")).IsDefined()) DecodeSecrets(ctx, n, lab);
  if ((n = section("vpn")).IsDefined()) DecodeVpn(ctx, n, lab, seen);
}

}  // namespace hearth::spec::internal
