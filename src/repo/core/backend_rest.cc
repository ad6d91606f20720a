// Rest backend: not implemented yet.
#include "repo/backend.h"

namespace hearth::repo {

Result<std::unique_ptr<Backend>> OpenRestBackend(const RepoUrl& url, const BackendOptions&) {
  return FailedPrecondition("the rest backend is not built yet: " + url.display);
}

}  // namespace hearth::repo
