// Sftp backend: not implemented yet.
#include "repo/backend.h"

namespace hearth::repo {

Result<std::unique_ptr<Backend>> OpenSftpBackend(const RepoUrl& url, const BackendOptions&) {
  return FailedPrecondition("the sftp backend is not built yet: " + url.display);
}

}  // namespace hearth::repo
