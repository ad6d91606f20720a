// Secrets provider: tracks each declared SOPS file by its digest.
//
// Decryption happens where a value is used (when a service starts); this
// provider makes secrets part of the plan so that (a) services that use a
// secret depend on its file, and (b) a changed file shows up in the plan and
// re-plans its users. It never reads or stores a secret value.
#include "providers/providers.h"

namespace hearth::providers {
namespace {

std::string FullPath(const spec::Lab& lab, const std::string& file) {
  return !file.empty() && file[0] == '/' ? file : lab.root + "/" + file;
}

class SecretsProvider final : public plan::Provider {
 public:
  std::string_view Name() const override { return "secrets"; }

  Result<std::vector<plan::Resource>> Desired(const spec::Lab& lab) const override {
    std::vector<plan::Resource> out;
    for (const auto& f : lab.secrets.files) {
      plan::Resource r;
      r.kind = "secret";
      r.name = f.file;
      r.fields["path"] = FullPath(lab, f.file);
      r.fields["sha256"] = f.digest;
      r.fields["keys"] = std::to_string(f.keys.size());
      // Each value as "(sensitive) <digest of its ciphertext>": the plan
      // names the secrets that changed and never holds a plaintext.
      for (const auto& [key, digest] : f.value_digests) {
        r.fields["value." + key] = "(sensitive) " + digest.substr(0, 12);
      }
      out.push_back(std::move(r));
    }
    return out;
  }

  Result<plan::Observed> Observe(const spec::Lab& /*lab*/, const std::vector<plan::Resource>&,
                                 const plan::Applied&) override {
    return plan::Observed{};  // the file is the source of truth; nothing else to see
  }

  Status Apply(const plan::Action& action, plan::ApplyContext& /*ctx*/) override {
    if (action.type == plan::ActionType::kDelete) return Status::Ok();
    const std::string& path = action.desired.fields.at("path");
    auto text = ReadFile(path);
    if (!text.ok()) return text.status().WithContext("secrets file");
    if (Sha256Hex(*text) != action.desired.fields.at("sha256")) {
      return FailedPrecondition(path + " changed after the plan was made; run hearth plan again");
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<plan::Provider> NewSecretsProvider() { return std::make_unique<SecretsProvider>(); }

}  // namespace hearth::providers
