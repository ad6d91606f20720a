// S3 backend: not implemented yet.
#include "repo/backend.h"

namespace hearth::repo {

Result<std::unique_ptr<Backend>> OpenS3Backend(const RepoUrl& url, const BackendOptions&) {
  return FailedPrecondition("the s3 backend is not built yet: " + url.display);
}

}  // namespace hearth::repo
