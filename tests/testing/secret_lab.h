// Test helper: a SOPS secrets file written with the project's sops module,
// encrypted to a freshly generated age identity.
#ifndef HEARTH_TESTS_TESTING_SECRET_LAB_H_
#define HEARTH_TESTS_TESTING_SECRET_LAB_H_

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "age/age.h"
#include "sops/sops.h"

namespace hearth::testing {

// Writes `path` as a SOPS YAML file holding "group.key" -> value pairs and
// `key_path` as the identity file that opens it. Returns an error text, or
// "" on success.
inline std::string WriteSecretsFile(const std::string& path, const std::string& key_path,
                                    const std::vector<std::pair<std::string, std::string>>& kv) {
  auto id = age::Identity::Generate();
  if (!id.ok()) return id.status().ToString();
  {
    std::ofstream out(key_path);
    out << std::string(id->Encode().view()) << "\n";
  }
  sops::Value root;
  root.kind = sops::Value::Kind::kMap;
  for (const auto& [k, v] : kv) {
    std::string group = k.substr(0, k.find('.'));
    sops::Value leaf;
    leaf.kind = sops::Value::Kind::kString;
    leaf.text = SecretBytes::FromString(v);
    sops::Value* g = nullptr;
    for (auto& [name, child] : root.map) {
      if (name == group) g = &child;
    }
    if (g == nullptr) {
      sops::Value fresh;
      fresh.kind = sops::Value::Kind::kMap;
      root.map.emplace_back(group, std::move(fresh));
      g = &root.map.back().second;
    }
    g->map.emplace_back(k.substr(k.find('.') + 1), std::move(leaf));
  }
  auto rec = age::Recipient::Parse(id->Recipient());
  if (!rec.ok()) return rec.status().ToString();
  sops::EncryptOptions eo;
  eo.recipients.push_back(*rec);
  auto file = sops::Encrypt(root, sops::Format::kYaml, eo);
  if (!file.ok()) return file.status().ToString();
  std::ofstream out(path);
  out << sops::Serialize(*file);
  return out ? "" : "cannot write " + path;
}

}  // namespace hearth::testing

#endif  // HEARTH_TESTS_TESTING_SECRET_LAB_H_
