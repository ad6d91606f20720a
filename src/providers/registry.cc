#include "providers/providers.h"

namespace hearth::providers {

void RegisterBuiltinProviders(plan::Registry& registry) {
  registry.Add(NewVolumeProvider());
  registry.Add(NewSecretsProvider());
  registry.Add(NewNetworkProvider());
  registry.Add(NewServiceProvider());
}

}  // namespace hearth::providers
