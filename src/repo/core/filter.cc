#include "repo/filter.h"

#include <fnmatch.h>

#include <fstream>

#include "fmt/format.h"

namespace hearth::repo {

namespace {

std::vector<std::string> Split(std::string_view p) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    if (j > i) out.emplace_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// Matches pattern components pat[pi..] against a prefix of path[xi..]; a match
// of the whole pattern against the first k components is enough (the rest are
// inside the matched directory).
bool MatchFrom(const std::vector<std::string>& pat, size_t pi, const std::vector<std::string>& path,
               size_t xi) {
  if (pi == pat.size()) return true;
  if (pat[pi] == "**") {
    for (size_t k = xi; k <= path.size(); ++k) {
      if (MatchFrom(pat, pi + 1, path, k)) return true;
    }
    return false;
  }
  if (xi == path.size()) return false;
  if (fnmatch(pat[pi].c_str(), path[xi].c_str(), 0) != 0) return false;
  return MatchFrom(pat, pi + 1, path, xi + 1);
}

// Could pat[pi..] match something that starts with path[xi..] (path is a dir prefix)?
bool PrefixCompatible(const std::vector<std::string>& pat, size_t pi,
                      const std::vector<std::string>& path, size_t xi) {
  if (xi == path.size()) return true;
  if (pi == pat.size()) return true;  // matched already: everything below
  if (pat[pi] == "**") return true;
  if (fnmatch(pat[pi].c_str(), path[xi].c_str(), 0) != 0) return false;
  return PrefixCompatible(pat, pi + 1, path, xi + 1);
}

}  // namespace

Result<PathFilter> PathFilter::Make(const std::vector<std::string>& patterns) {
  PathFilter f;
  for (const auto& p : patterns) {
    std::string t = Trim(p);
    if (t.empty()) return InvalidArgument("an empty pattern matches nothing; remove it");
    auto comps = Split(t);
    if (comps.empty()) return InvalidArgument(fmt::format("pattern \"{}\" has no components", p));
    if (t[0] != '/') comps.insert(comps.begin(), "**");
    for (const auto& c : comps) {
      size_t open = c.find('[');
      if (open != std::string::npos && c.find(']', open) == std::string::npos) {
        return InvalidArgument(fmt::format("pattern \"{}\": unterminated [ in \"{}\"", p, c));
      }
    }
    f.patterns_.push_back(std::move(comps));
    f.raw_.push_back(t);
  }
  return f;
}

Status PathFilter::AddFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound(fmt::format("cannot read exclude file {}", path));
  std::string line;
  int n = 0;
  std::vector<std::string> pats;
  while (std::getline(in, line)) {
    ++n;
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#') continue;
    auto one = Make({t});
    if (!one.ok()) return InvalidArgument(fmt::format("{}:{}: {}", path, n, one.status().message()));
    patterns_.push_back(one->patterns_[0]);
    raw_.push_back(t);
  }
  return Status::Ok();
}

bool PathFilter::Matches(std::string_view path) const {
  if (patterns_.empty()) return false;
  auto comps = Split(path);
  for (const auto& p : patterns_) {
    if (MatchFrom(p, 0, comps, 0)) return true;
  }
  return false;
}

bool PathFilter::MayMatchBelow(std::string_view dir) const {
  auto comps = Split(dir);
  for (const auto& p : patterns_) {
    if (PrefixCompatible(p, 0, comps, 0)) return true;
  }
  return false;
}

}  // namespace hearth::repo
