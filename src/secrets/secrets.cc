#include "secrets/secrets.h"

#include <fcntl.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sops/sops.h"

namespace hearth::secrets {
namespace {

constexpr size_t kMarkerKeyBytes = 32;

std::string FullPath(const spec::Lab& lab, const std::string& file) {
  return !file.empty() && file[0] == '/' ? file : lab.root + "/" + file;
}

// Reads or creates <state_dir>/secret-marker.key (32 random bytes, 0600).
Result<SecretBytes> MarkerKey(const std::string& state_dir) {
  SecretBytes key(kMarkerKeyBytes);
  if (state_dir.empty()) {
    if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
      return Internal("cannot draw random bytes for the secret marker key");
    }
    return key;
  }
  const std::string path = state_dir + "/secret-marker.key";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = ::read(fd, key.data(), key.size());
    ::close(fd);
    if (n == static_cast<ssize_t>(key.size())) return key;
    return DataLoss(path + " is damaged (expected 32 bytes); delete it (services that use "
                           "secrets restart once, as their markers change)");
  }
  if (errno != ENOENT) {
    return Unavailable("cannot read " + path + ": " + std::strerror(errno));
  }
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
    return Internal("cannot draw random bytes for the secret marker key");
  }
  ::mkdir(state_dir.c_str(), 0700);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable("cannot create " + tmp + ": " + std::strerror(errno));
  bool ok = ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  // link() fails if another process created the key first: use theirs.
  if (!ok || (::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST)) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Unavailable("cannot create " + path + ": " + std::strerror(err));
  }
  ::unlink(tmp.c_str());
  return MarkerKey(state_dir);
}

void Flatten(const sops::Value& v, const std::string& prefix,
             std::map<std::string, SecretBytes, std::less<>>& out) {
  switch (v.kind) {
    case sops::Value::Kind::kMap:
      for (const auto& [k, child] : v.map) Flatten(child, prefix.empty() ? k : prefix + "." + k, out);
      break;
    case sops::Value::Kind::kList:
      for (size_t i = 0; i < v.list.size(); ++i) {
        Flatten(v.list[i], prefix + "." + std::to_string(i), out);
      }
      break;
    case sops::Value::Kind::kNull:
      break;
    default:
      if (!prefix.empty() && out.find(prefix) == out.end()) out.emplace(prefix, v.text.Clone());
      break;
  }
}

}  // namespace

std::string ToDottedPath(std::string_view key_path) {
  std::string out;
  for (char c : key_path) {
    if (c == '[') {
      out += '.';
    } else if (c != ']') {
      out += c;
    }
  }
  return out;
}

Result<std::shared_ptr<const LabSecrets>> LabSecrets::Load(const spec::Lab& lab,
                                                           const LoadOptions& options) {
  auto out = std::make_shared<LabSecrets>();
  ASSIGN_OR_RETURN(out->marker_key_, MarkerKey(options.state_dir));
  if (lab.secrets.files.empty()) return std::shared_ptr<const LabSecrets>(out);

  sops::IdentitySources sources;
  sources.env = options.env;
  sources.hearth_key_file = options.identity_file;
  if (sources.hearth_key_file.empty() && !lab.secrets.identity.empty()) {
    sources.hearth_key_file = FullPath(lab, lab.secrets.identity);
  }
  ASSIGN_OR_RETURN(std::vector<age::Identity> identities, sops::FindIdentities(sources));

  for (const auto& f : lab.secrets.files) {
    const std::string path = FullPath(lab, f.file);
    auto text = ReadFile(path);
    if (!text.ok()) return text.status().WithContext("secrets file " + path);
    ASSIGN_OR_RETURN(sops::EncryptedFile file,
                     sops::Parse(*text, sops::FormatForPath(path), path));
    ASSIGN_OR_RETURN(SecretBytes key, sops::DataKey(file, identities, path));
    ASSIGN_OR_RETURN(sops::Value plain, sops::Decrypt(file, key, path));
    Flatten(plain, "", out->values_);
  }
  return std::shared_ptr<const LabSecrets>(out);
}

const SecretBytes* LabSecrets::Find(std::string_view key_path) const {
  auto it = values_.find(ToDottedPath(key_path));
  return it == values_.end() ? nullptr : &it->second;
}

std::string LabSecrets::Marker(std::string_view key_path) const {
  std::string dotted = ToDottedPath(key_path);
  const SecretBytes* v = Find(dotted);
  if (v == nullptr) return "";
  SecretBytes msg(dotted.data(), dotted.size());
  msg.Append("\0", 1);
  msg.Append(v->data(), v->size());
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), marker_key_.data(), static_cast<int>(marker_key_.size()), msg.data(),
       msg.size(), mac, &len);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < 6 && i < len; ++i) {
    hex.push_back(kHex[mac[i] >> 4]);
    hex.push_back(kHex[mac[i] & 15]);
  }
  return hex;
}

std::vector<std::string_view> LabSecrets::Values() const {
  std::vector<std::string_view> out;
  for (const auto& [k, v] : values_) {
    if (!v.empty()) out.push_back(v.view());
  }
  return out;
}


Expanded Expand(const spec::Lab& lab, const std::string& in, const std::string& runtime_dir,
                const ExpandContext& sc, Status& error) {
  Expanded out;
  size_t i = 0;
  auto both = [&](const std::string& text) {
    out.real += text;
    out.shown += text;
  };
  while (i < in.size()) {
    if (in.compare(i, 3, "$${") == 0) {
      both("${");
      i += 3;
      continue;
    }
    if (in.compare(i, 2, "${") != 0) {
      both(std::string(1, in[i++]));
      continue;
    }
    size_t end = in.find('}', i);
    if (end == std::string::npos) {  // validation rejects this; keep it literal
      both(in.substr(i));
      break;
    }
    std::string body = in.substr(i + 2, end - i - 2);
    std::string kind = body.substr(0, body.find(':'));
    std::string target = body.find(':') == std::string::npos ? "" : body.substr(body.find(':') + 1);
    if (kind == "volume") {
      const spec::Volume* v = lab.FindVolume(target);
      both(v ? lab.VolumePath(*v) : "");
    } else if (kind == "port") {
      both(target.substr(0, target.find('/')));
    } else if (kind == "runtime_dir") {
      both(runtime_dir);
    } else if (kind == "lab_dir") {
      both(lab.root);
    } else if (kind == "secret") {
      const SecretBytes* value = sc.values ? sc.values->Find(target) : nullptr;
      if (value != nullptr) {
        out.real.append(value->view());
        out.shown += "(sensitive:" + sc.values->Marker(target) + ")";
        if (sc.sensitive && !value->empty()) sc.sensitive->emplace_back(value->view());
      } else if (error.ok()) {
        if (!sc.values) {
          error = FailedPrecondition(
              "uses ${secret:" + target + "}, but the lab's secrets could not be decrypted: " +
              (sc.load_error.ok() ? std::string("no secrets were loaded") : sc.load_error.message()));
        } else {
          error = NotFound("uses ${secret:" + target +
                           "}, which is in none of the lab's secrets files; add it with "
                           "`hearth secret set " + target + " VALUE` or fix the reference");
        }
      }
    }
    i = end + 1;
  }
  return out;
}

}  // namespace hearth::secrets
