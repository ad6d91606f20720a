// Hearth providers: the one explicit list of providers this build knows.
//
// Each provider lives in src/providers/<name>/ and is created by a New...()
// factory declared here. RegisterBuiltinProviders() adds them to a registry
// in a fixed order. There is no static self-registration: it silently
// disappears when linking static libraries.
//
// Providers in this build:
//   volume   - creates volume directories (real; observes them with stat).
//   secrets  - tracks SOPS secrets files by digest; services that use a
//              secret are re-planned when its file changes (real, read-only).
//   network  - networks and the firewall policy: desired state is recorded in
//              the state store; programming nftables is not implemented yet.
//   service  - services: desired state is recorded in the state store;
//              `hearth up` (src/daemon) runs them through the runtime drivers.
//
// Thread-safety: see plan::Provider.
#ifndef HEARTH_PROVIDERS_PROVIDERS_H_
#define HEARTH_PROVIDERS_PROVIDERS_H_

#include <memory>

#include "plan/plan.h"

namespace hearth::providers {

std::unique_ptr<plan::Provider> NewVolumeProvider();
std::unique_ptr<plan::Provider> NewSecretsProvider();
std::unique_ptr<plan::Provider> NewNetworkProvider();
std::unique_ptr<plan::Provider> NewServiceProvider();

// Adds every provider above, in dependency-friendly order.
void RegisterBuiltinProviders(plan::Registry& registry);

// Canonical flattened fields for a service (exposed for tests and for the
// drivers that will run services, so they all agree on one form).
plan::Fields ServiceFields(const spec::Lab& lab, const spec::Service& service);
// "(sensitive) <marker>" for a secret key path (a digest of its stored
// ciphertext), "" when no secrets file has the key.
std::string SensitiveMarker(const spec::Lab& lab, const std::string& key_path);

}  // namespace hearth::providers

#endif  // HEARTH_PROVIDERS_PROVIDERS_H_
