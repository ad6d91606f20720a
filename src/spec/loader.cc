// Reading spec files, guarding against hostile input, and merging documents.
#include <dirent.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>

#include "spec/decode.h"
#include "spec/spec.h"

namespace hearth::spec {
namespace {

using internal::Ctx;

// yaml-cpp parses recursively, so a document nested thousands of levels deep
// could exhaust the stack. Reject such input before handing it over. This
// over-approximates depth (flow brackets plus block "- " runs plus indent).
bool TooDeep(std::string_view text, int& line_out) {
  int flow = 0;
  int line = 1;
  bool in_single = false, in_double = false;
  size_t line_start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      ++line;
      line_start = i + 1;
      in_single = in_double = false;  // plain multi-line quoting is rare in specs
      continue;
    }
    if (in_double) {
      if (c == '\\') ++i;
      else if (c == '"') in_double = false;
      continue;
    }
    if (in_single) {
      if (c == '\'') in_single = false;
      continue;
    }
    if (c == '"') in_double = true;
    else if (c == '\'') in_single = true;
    else if (c == '[' || c == '{') ++flow;
    else if (c == ']' || c == '}') flow = std::max(0, flow - 1);
    // Block nesting: each "- " or "? " or indent step opens a level.
    if (i == line_start) {
      int levels = 0;
      size_t j = i;
      while (j < text.size() && (text[j] == ' ' || text[j] == '-' || text[j] == '?' ||
                                 text[j] == '\t')) {
        if (text[j] != ' ' && text[j] != '\t') ++levels;
        ++j;
      }
      levels += static_cast<int>(j - i) / 2;
      if (levels > kMaxNestingDepth * 4) {
        line_out = line;
        return true;
      }
    }
    if (flow > kMaxNestingDepth) {
      line_out = line;
      return true;
    }
  }
  return false;
}

// Line of a "---" marker that starts a second document, or 0.
int SecondDocumentLine(std::string_view text) {
  bool content = false;
  int line = 1;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    std::string_view l = text.substr(start, end == std::string_view::npos ? text.npos : end - start);
    bool marker = l.substr(0, 3) == "---" && (l.size() == 3 || l[3] == ' ' || l[3] == '\r');
    if (marker && content) return line;
    std::string t = Trim(l);
    if (!marker && !t.empty() && t[0] != '#' && t[0] != '%') content = true;
    if (end == std::string_view::npos) break;
    start = end + 1;
    ++line;
  }
  return 0;
}

void ParseDocument(const std::string& file, const std::string& text, Lab& lab,
                   internal::Singletons& seen, Diagnostics& diags) {
  if (text.size() > kMaxSpecFileBytes) {
    diags.Error(Location{file, 0, 0}, "",
                "spec file is " + std::to_string(text.size()) + " bytes; the limit is " +
                    std::to_string(kMaxSpecFileBytes) + " (split it into several files)");
    return;
  }
  int deep_line = 0;
  if (TooDeep(text, deep_line)) {
    diags.Error(Location{file, deep_line, 1}, "",
                "nesting is deeper than " + std::to_string(kMaxNestingDepth) +
                    " levels; a lab spec never needs that, so the file is not read");
    return;
  }
  // One document per file. (yaml-cpp 0.7's LoadAll can loop forever on some
  // malformed input, so only Load is used; a second document is reported.)
  if (int second = SecondDocumentLine(text); second > 0) {
    diags.Error(Location{file, second, 1}, "",
                "a second YAML document starts here; put one document in each file (a lab may "
                "be a directory of files)");
    return;
  }
  std::vector<YAML::Node> docs;
  try {
    docs.push_back(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    Location loc{file, e.mark.is_null() ? 0 : e.mark.line + 1,
                 e.mark.is_null() ? 0 : e.mark.column + 1};
    std::string hint;
    if (e.msg.find("flow") != std::string::npos) hint = "; look for an unclosed [ or { above";
    diags.Error(loc, "", "YAML syntax error: " + e.msg + hint);
    return;
  }
  Ctx ctx;
  ctx.file = file;
  ctx.diags = &diags;
  ctx.interpolations = &lab.interpolations;
  try {
    for (const auto& doc : docs) internal::DecodeDocument(ctx, doc, lab, seen);
  } catch (const YAML::Exception& e) {
    // yaml-cpp may throw on odd node shapes while we walk them; report, don't crash.
    Location loc{file, e.mark.is_null() ? 0 : e.mark.line + 1,
                 e.mark.is_null() ? 0 : e.mark.column + 1};
    diags.Error(loc, "", "cannot read this YAML structure: " + e.msg);
  }
}

bool HasYamlSuffix(const std::string& name) {
  auto ends = [&](std::string_view s) {
    return name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".yaml") || ends(".yml");
}

void CollectKeys(const YAML::Node& n, const std::string& prefix, std::vector<std::string>& out,
                 int depth) {
  if (depth > kMaxNestingDepth) return;
  if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      std::string key = it->first.Scalar();
      if (prefix.empty() && key == "sops") continue;  // SOPS metadata, not a secret
      std::string p = prefix.empty() ? key : prefix + "." + key;
      out.push_back(p);
      CollectKeys(it->second, p, out, depth + 1);
    }
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) {
      std::string p = prefix + "[" + std::to_string(i) + "]";
      out.push_back(p);
      CollectKeys(n[i], p, out, depth + 1);
    }
  }
}

// Reads each declared secrets file's key structure (keys are clear text in
// SOPS files), so references can be checked without any key material.
void ReadSecretFiles(Lab& lab) {
  for (auto& sf : lab.secrets.files) {
    std::string full = !sf.file.empty() && sf.file[0] == '/' ? sf.file : lab.root + "/" + sf.file;
    auto text = ReadFile(full);
    if (!text.ok()) continue;
    sf.digest = Sha256Hex(*text);
    int line = 0;
    if (text->size() > kMaxSpecFileBytes || TooDeep(*text, line)) continue;
    try {
      YAML::Node doc = YAML::Load(*text);
      CollectKeys(doc, "", sf.keys, 0);
      sf.readable = doc.IsMap();
    } catch (const YAML::Exception&) {
      sf.readable = false;
    }
  }
}

}  // namespace

LoadResult LoadLabFromStrings(const std::vector<std::pair<std::string, std::string>>& docs,
                              const std::string& root) {
  auto lab = std::make_shared<Lab>();
  lab->root = root;
  LoadResult result;
  internal::Singletons seen;
  for (const auto& [file, text] : docs) {
    lab->files.push_back(file);
    ParseDocument(file, text, *lab, seen, result.diags);
  }
  if (!seen.lab && !result.diags.HasErrors()) {
    std::string where = docs.empty() ? root : docs.front().first;
    result.diags.Error(Location{where, 0, 0}, "lab",
                       "missing the lab section: add \"lab: { name: NAME }\" to one spec file");
  }
  ReadSecretFiles(*lab);
  result.lab = std::move(lab);
  return result;
}

LoadResult LoadLab(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    LoadResult r;
    r.lab = std::make_shared<Lab>();
    r.diags.Error(Location{path, 0, 0}, "",
                  "lab spec not found: no such file or directory; pass --lab DIR pointing at a "
                  "directory with lab.yaml (for example examples/home)");
    return r;
  }
  std::vector<std::string> files;
  std::string root;
  if (S_ISDIR(st.st_mode)) {
    root = path;
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name.empty() || name[0] == '.' || !HasYamlSuffix(name)) continue;
        // Secret files live next to the spec but are not spec documents.
        if (name.find(".sops.") != std::string::npos) continue;
        files.push_back(root + "/" + name);
      }
      ::closedir(d);
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      LoadResult r;
      r.lab = std::make_shared<Lab>();
      r.diags.Error(Location{path, 0, 0}, "",
                    "no *.yaml or *.yml files in this directory; create lab.yaml (see "
                    "examples/home) or pass --lab with the right directory");
      return r;
    }
  } else {
    files.push_back(path);
    size_t slash = path.rfind('/');
    root = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  }
  std::vector<std::pair<std::string, std::string>> docs;
  Diagnostics io;
  for (const auto& f : files) {
    auto text = ReadFile(f);
    if (!text.ok()) {
      io.Error(Location{f, 0, 0}, "", text.status().message());
      continue;
    }
    docs.emplace_back(f, std::move(text).value());
  }
  LoadResult r = LoadLabFromStrings(docs, root);
  r.diags.Append(io);
  return r;
}

LoadResult LoadAndValidate(const std::string& path) {
  LoadResult r = LoadLab(path);
  if (r.lab) ValidateLab(*r.lab, r.diags);
  r.diags.Sort();
  return r;
}

LoadResult LoadAndValidateStrings(const std::vector<std::pair<std::string, std::string>>& docs,
                                  const std::string& root) {
  LoadResult r = LoadLabFromStrings(docs, root);
  ValidateLab(*r.lab, r.diags);
  r.diags.Sort();
  return r;
}

}  // namespace hearth::spec
