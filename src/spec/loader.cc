// Reading spec files, guarding against hostile input, and merging documents.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <functional>

#include "spec/decode.h"
#include "spec/spec.h"

namespace hearth::spec {
namespace {

using internal::Ctx;

void ParseDocument(const std::string& file, const std::string& text, Lab& lab,
                   internal::Singletons& seen, Diagnostics& diags) {
  if (text.size() > kMaxSpecFileBytes) {
    diags.Error(Location{file, 0, 0}, "",
                "spec file is " + std::to_string(text.size()) + " bytes; the limit is " +
                    std::to_string(kMaxSpecFileBytes) + " (split it into several files)");
    return;
  }
  internal::ParsedYaml parsed = internal::ParseYaml(text, kMaxNestingDepth);
  for (const auto& e : parsed.errors) {
    Location loc{file, e.mark.is_null() ? 0 : e.mark.line + 1,
                 e.mark.is_null() ? 0 : e.mark.column + 1};
    diags.Error(loc, "", e.message);
  }
  if (!parsed.ok()) return;
  Ctx ctx;
  ctx.file = file;
  ctx.diags = &diags;
  ctx.interpolations = &lab.interpolations;
  internal::DecodeDocument(ctx, parsed.root, lab, seen);
}

bool HasYamlSuffix(const std::string& name) {
  auto ends = [&](std::string_view s) {
    return name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".yaml") || ends(".yml");
}

void CollectKeys(const internal::Node& n, const std::string& prefix, SecretFile& sf, int depth) {
  if (depth > kMaxNestingDepth) return;
  std::vector<std::string>& out = sf.keys;
  if (n.IsScalar() && !prefix.empty()) sf.value_digests[prefix] = Sha256Hex(n.Scalar());
  if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      std::string key = it->first.Scalar();
      if (prefix.empty() && key == "sops") continue;  // SOPS metadata, not a secret
      std::string p = prefix.empty() ? key : prefix + "." + key;
      out.push_back(p);
      CollectKeys(it->second, p, sf, depth + 1);
    }
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) {
      std::string p = prefix + "[" + std::to_string(i) + "]";
      out.push_back(p);
      CollectKeys(n[i], p, sf, depth + 1);
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
    if (text->size() > kMaxSpecFileBytes) continue;
    internal::ParsedYaml parsed = internal::ParseYaml(*text, kMaxNestingDepth);
    if (!parsed.ok()) continue;
    CollectKeys(parsed.root, "", sf, 0);
    sf.readable = parsed.root.IsMap();
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
  // The root is absolute so paths derived from it (volumes, secrets files)
  // do not depend on the directory hearth was started from.
  std::error_code ec;
  std::string abs = std::filesystem::absolute(path, ec).lexically_normal().string();
  if (ec) abs = path;
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  std::string root;
  if (S_ISDIR(st.st_mode)) {
    root = abs;
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
    size_t slash = abs.rfind('/');
    root = slash == 0 ? "/" : abs.substr(0, slash);
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
