// Reading fields of JSON written by other tools without exceptions: a field of
// the wrong type reads as absent (the caller then reports what is missing).
// Internal to the repo module.
#ifndef HEARTH_REPO_JSON_UTIL_H_
#define HEARTH_REPO_JSON_UTIL_H_

#include <string>

#include "nlohmann/json.hpp"

namespace hearth::repo {

inline std::string JsonString(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

inline bool JsonBool(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace hearth::repo

#endif  // HEARTH_REPO_JSON_UTIL_H_
