// Include/exclude patterns with restic's rules. Internal to the repo module.
//
// A pattern is matched against a whole path, component by component, with
// shell wildcards per component (fnmatch: * ? [...] and \ escapes) and "**"
// for any number of components. A pattern that does not start with "/"
// matches at any depth ("*.log" and "cache/tmp" match anywhere). A pattern
// that matches a directory also covers everything inside it.
#ifndef HEARTH_REPO_FILTER_H_
#define HEARTH_REPO_FILTER_H_

#include <string>
#include <string_view>
#include <vector>

#include "common/common.h"

namespace hearth::repo {

class PathFilter {
 public:
  PathFilter() = default;
  // InvalidArgument for an empty pattern or a malformed bracket expression.
  static Result<PathFilter> Make(const std::vector<std::string>& patterns);
  // Adds the patterns of a file: one per line, blank lines and lines starting
  // with # ignored, surrounding spaces trimmed. Errors name file:line.
  Status AddFile(const std::string& path);
  bool empty() const { return patterns_.empty(); }
  // True when any pattern matches path (absolute, "/"-separated) or one of its parents.
  bool Matches(std::string_view path) const;
  // True when a pattern could match something below dir (for includes: whether
  // to descend). Conservative: true when unsure.
  bool MayMatchBelow(std::string_view dir) const;
  const std::vector<std::string>& patterns() const { return raw_; }

 private:
  std::vector<std::vector<std::string>> patterns_;  // split into components
  std::vector<std::string> raw_;
};

}  // namespace hearth::repo

#endif  // HEARTH_REPO_FILTER_H_
