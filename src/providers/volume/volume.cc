// Volume provider: one directory per declared volume.
//
// Deleting a volume resource never deletes data: the directory is left in
// place and the plan says so. Losing a database because a line was removed
// from a YAML file is not an acceptable failure mode.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "providers/providers.h"

namespace hearth::providers {
namespace {

class VolumeProvider final : public plan::Provider {
 public:
  std::string_view Name() const override { return "volume"; }

  Result<std::vector<plan::Resource>> Desired(const spec::Lab& lab) const override {
    std::vector<plan::Resource> out;
    for (const auto& v : lab.volumes) {
      plan::Resource r;
      r.kind = "volume";
      r.name = v.name;
      r.fields["path"] = lab.VolumePath(v);
      r.fields["mode"] = v.mode;
      if (v.host) r.fields["host"] = v.host->name;
      if (v.size) r.fields["size"] = v.size->text;
      r.force_new = {"path", "host"};
      out.push_back(std::move(r));
    }
    return out;
  }

  Result<plan::Observed> Observe(const spec::Lab& /*lab*/, const std::vector<plan::Resource>& desired,
                                 const plan::Applied& applied) override {
    plan::Observed out;
    auto look = [&](const std::string& id, const std::string& path) {
      struct stat st {};
      plan::ObservedResource o;
      if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        o.exists = true;
        o.fields["path"] = path;
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
        o.fields["mode"] = mode;
      }
      out[id] = o;
    };
    // An applied volume is looked for where it was made, so a path change
    // shows as a replacement (old path -> new path), not as a fresh create.
    for (const auto& r : desired) {
      std::string path = r.fields.at("path");
      if (auto a = applied.find(r.Id()); a != applied.end()) {
        if (auto p = a->second.fields.find("path"); p != a->second.fields.end()) path = p->second;
      }
      look(r.Id(), path);
    }
    for (const auto& [id, a] : applied) {
      if (out.count(id)) continue;
      auto p = a.fields.find("path");
      if (p != a.fields.end()) look(id, p->second);
    }
    return out;
  }

  Status Apply(const plan::Action& action, plan::ApplyContext& /*ctx*/) override {
    if (action.type == plan::ActionType::kDelete) {
      // Forget the volume; keep its data (see the file comment).
      return Status::Ok();
    }
    const std::string& path = action.desired.fields.at("path");
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) {
      return Unavailable("volume " + action.name + ": cannot create " + path + ": " +
                         ec.message() + "; check the path and its parent's permissions");
    }
    const std::string& mode = action.desired.fields.at("mode");
    if (::chmod(path.c_str(), static_cast<mode_t>(std::stoul(mode, nullptr, 8))) != 0) {
      return Unavailable("volume " + action.name + ": cannot chmod " + path + ": " +
                         std::strerror(errno));
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<plan::Provider> NewVolumeProvider() { return std::make_unique<VolumeProvider>(); }

}  // namespace hearth::providers
