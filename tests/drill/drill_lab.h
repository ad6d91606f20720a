// What the drill tests share: the backups section of their labs (a local
// repository and an offsite copy, policy "nightly" with a 2-minute RTO), and
// loading a lab and backing it up once.
#ifndef HEARTH_TESTS_DRILL_DRILL_LAB_H_
#define HEARTH_TESTS_DRILL_DRILL_LAB_H_

#include <memory>
#include <string>

#include "backup/backup.h"
#include "spec/spec.h"
#include "state/state.h"

namespace hearth::drill::testing {

inline constexpr char kBackups[] = R"(backups:
  repositories:
    - { name: local, url: repos/local, medium: disk, password: "pw-local" }
    - { name: offsite, url: repos/offsite, medium: object, offsite: true, password: "pw-off" }
  policies:
    - { name: nightly, repository: local, copies: [offsite], drill: { rto: 2m } }
)";

// Loads `yaml` + kBackups with its root at lab_dir, opens a state store in
// state_dir, fills *env and runs the policy "nightly" once. Returns "" when
// all went well, else what did not.
inline std::string LoadAndBackUp(const std::string& yaml, const std::string& lab_dir,
                                 const std::string& state_dir,
                                 std::unique_ptr<state::Store>* store, backup::Env* env) {
  auto r = spec::LoadAndValidateStrings({{"lab.yaml", yaml + kBackups}}, lab_dir);
  if (!r.ok()) {
    std::string diags;
    for (const auto& d : r.diags.All()) diags += d.ToString() + "\n";
    return diags;
  }
  auto opened = state::Store::Open(state_dir);
  if (!opened.ok()) return opened.status().ToString();
  *store = std::move(*opened);
  env->lab = r.lab;
  env->state_dir = state_dir;
  env->store = store->get();
  auto b = backup::RunPolicy(*env, "nightly");
  if (!b.ok()) return b.status().ToString();
  if (!b->ok()) return Join(b->errors(), "\n");
  return "";
}

}  // namespace hearth::drill::testing

#endif  // HEARTH_TESTS_DRILL_DRILL_LAB_H_
