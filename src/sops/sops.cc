// SOPS documents: parse, serialise, encrypt, decrypt, re-encrypt, rotate,
// update keys, identities. See sops.h for the contract and formats.md §2 for
// the facts.
#include "sops/sops.h"

#include <openssl/evp.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>
#include <unordered_map>

#include "sops/sops_internal.h"

namespace hearth::sops {

using internal::Node;
using ojson = nlohmann::ordered_json;

namespace {

constexpr std::string_view kDefaultUnencryptedSuffix = "_unencrypted";

// "<source>: " or "" when there is no source.
std::string Prefix(std::string_view source) {
  return source.empty() ? std::string() : std::string(source) + ": ";
}

std::string DottedPath(const std::vector<std::string>& segments) { return Join(segments, "."); }

std::string Aad(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) {
    out += k;
    out.push_back(':');
  }
  return out;
}

// Master key types other than age, in SOPS's metadata field order.
constexpr std::string_view kOtherBeforeAge[] = {"shamir_threshold", "key_groups", "kms",
                                                "gcp_kms",          "hckms",      "azure_kv",
                                                "hc_vault"};
constexpr std::string_view kOtherAfterMac[] = {"pgp"};
constexpr std::string_view kCommentSelectors[] = {"unencrypted_comment_regex",
                                                  "encrypted_comment_regex"};

bool OtherHas(const Metadata& m, std::string_view key) {
  if (!m.other.is_object()) return false;
  auto it = m.other.find(std::string(key));
  if (it == m.other.end() || it->is_null()) return false;
  if (it->is_array() || it->is_object() || it->is_string()) return !it->empty();
  if (it->is_number()) return it->get<double>() != 0;
  return true;
}

// Master keys Hearth cannot use (pgp, kms, ...) that hold something.
std::vector<std::string> ForeignMasterKeys(const Metadata& m) {
  std::vector<std::string> out;
  for (auto k : {"kms", "gcp_kms", "hckms", "azure_kv", "hc_vault", "pgp", "key_groups"}) {
    if (OtherHas(m, k)) out.emplace_back(k);
  }
  return out;
}

Status CheckSelectors(const Metadata& m, std::string_view where) {
  int n = !m.unencrypted_suffix.empty() + !m.encrypted_suffix.empty() +
          !m.unencrypted_regex.empty() + !m.encrypted_regex.empty();
  for (auto k : kCommentSelectors) n += OtherHas(m, k) ? 1 : 0;
  if (n > 1) {
    return InvalidArgument(std::string(where) +
                           "more than one of unencrypted_suffix, encrypted_suffix, "
                           "unencrypted_regex, encrypted_regex (and the comment regexes) is set; "
                           "use at most one");
  }
  return Status::Ok();
}

bool NoSelector(const Metadata& m) {
  bool none = m.unencrypted_suffix.empty() && m.encrypted_suffix.empty() &&
              m.unencrypted_regex.empty() && m.encrypted_regex.empty();
  for (auto k : kCommentSelectors) none = none && !OtherHas(m, k);
  return none;
}

// ----- metadata from YAML / JSON -----

Result<std::string> ScalarText(const Node& n, std::string_view field, std::string_view source) {
  if (n.kind != Node::Kind::kScalar) {
    return InvalidArgument(std::string(source) + ":" + std::to_string(n.line) + ":" +
                           std::to_string(n.column) + ": sops." + std::string(field) +
                           " must be a string");
  }
  return std::string(n.text.view());
}

nlohmann::json NodeToJson(Node&& n) {
  Value v = internal::NodeToValue(std::move(n));
  return nlohmann::json::parse(internal::ValueToJson(v).dump());
}

Result<Metadata> MetadataFromYaml(Node&& block, std::string_view source, int line, int column) {
  std::string where = std::string(source) + ":" + std::to_string(line) + ":" + std::to_string(column);
  if (block.kind != Node::Kind::kMap) {
    return InvalidArgument(where + ": the sops metadata block must be a mapping");
  }
  Metadata m;
  m.version.clear();
  m.other = nlohmann::json::object();
  for (auto& e : block.map) {
    const std::string& k = e.key;
    Node& v = e.value;
    if (k == "age") {
      if (v.kind == Node::Kind::kScalar && v.plain && internal::ResolvePlainScalar(v.text.view()).kind ==
                                                           Value::Kind::kNull) {
        continue;
      }
      if (v.kind != Node::Kind::kSeq) {
        return InvalidArgument(where + ": sops.age must be a list of {recipient, enc}");
      }
      for (size_t i = 0; i < v.seq.size(); ++i) {
        Node& item = v.seq[i];
        std::string at = "sops.age[" + std::to_string(i) + "]";
        if (item.kind != Node::Kind::kMap) {
          return InvalidArgument(std::string(source) + ":" + std::to_string(item.line) + ":" +
                                 std::to_string(item.column) + ": " + at +
                                 " must be a mapping with recipient and enc");
        }
        AgeKey key;
        for (auto& f : item.map) {
          if (f.key == "recipient") {
            ASSIGN_OR_RETURN(key.recipient, ScalarText(f.value, "age.recipient", source));
          } else if (f.key == "enc") {
            ASSIGN_OR_RETURN(key.enc, ScalarText(f.value, "age.enc", source));
          }
        }
        if (key.recipient.empty() || key.enc.empty()) {
          return InvalidArgument(std::string(source) + ":" + std::to_string(item.line) + ":" +
                                 std::to_string(item.column) + ": " + at +
                                 " needs both recipient and enc");
        }
        m.age.push_back(std::move(key));
      }
    } else if (k == "lastmodified") {
      ASSIGN_OR_RETURN(m.lastmodified, ScalarText(v, k, source));
    } else if (k == "mac") {
      ASSIGN_OR_RETURN(m.mac, ScalarText(v, k, source));
    } else if (k == "unencrypted_suffix") {
      ASSIGN_OR_RETURN(m.unencrypted_suffix, ScalarText(v, k, source));
    } else if (k == "encrypted_suffix") {
      ASSIGN_OR_RETURN(m.encrypted_suffix, ScalarText(v, k, source));
    } else if (k == "unencrypted_regex") {
      ASSIGN_OR_RETURN(m.unencrypted_regex, ScalarText(v, k, source));
    } else if (k == "encrypted_regex") {
      ASSIGN_OR_RETURN(m.encrypted_regex, ScalarText(v, k, source));
    } else if (k == "version") {
      ASSIGN_OR_RETURN(m.version, ScalarText(v, k, source));
    } else if (k == "mac_only_encrypted") {
      ASSIGN_OR_RETURN(std::string t, ScalarText(v, k, source));
      Value b = v.plain ? internal::ResolvePlainScalar(t) : Value{};
      if (b.kind != Value::Kind::kBool) {
        return InvalidArgument(std::string(source) + ":" + std::to_string(v.line) + ":" +
                               std::to_string(v.column) +
                               ": sops.mac_only_encrypted must be true or false");
      }
      m.mac_only_encrypted = b.text.view() == "True";
    } else {
      m.other[k] = NodeToJson(std::move(v));
    }
  }
  return m;
}

Result<std::string> JsonString(const ojson& j, std::string_view field, std::string_view source) {
  if (j.is_null()) return std::string();
  if (j.is_string()) return j.get<std::string>();
  if (field == "version" && j.is_number()) return j.dump();
  return InvalidArgument(std::string(source) + ": sops." + std::string(field) + " must be a string");
}

Result<Metadata> MetadataFromJson(const ojson& block, std::string_view source) {
  if (!block.is_object()) {
    return InvalidArgument(std::string(source) + ": the \"sops\" metadata must be an object");
  }
  Metadata m;
  m.version.clear();
  m.other = nlohmann::json::object();
  for (const auto& [k, v] : block.items()) {
    if (k == "age") {
      if (v.is_null()) continue;
      if (!v.is_array()) {
        return InvalidArgument(std::string(source) + ": sops.age must be a list of {recipient, enc}");
      }
      for (size_t i = 0; i < v.size(); ++i) {
        const ojson& item = v[i];
        std::string at = "sops.age[" + std::to_string(i) + "]";
        if (!item.is_object() || !item.contains("recipient") || !item.contains("enc") ||
            !item["recipient"].is_string() || !item["enc"].is_string()) {
          return InvalidArgument(std::string(source) + ": " + at +
                                 " needs string fields recipient and enc");
        }
        m.age.push_back(AgeKey{item["recipient"].get<std::string>(), item["enc"].get<std::string>()});
      }
    } else if (k == "lastmodified") {
      ASSIGN_OR_RETURN(m.lastmodified, JsonString(v, k, source));
    } else if (k == "mac") {
      ASSIGN_OR_RETURN(m.mac, JsonString(v, k, source));
    } else if (k == "unencrypted_suffix") {
      ASSIGN_OR_RETURN(m.unencrypted_suffix, JsonString(v, k, source));
    } else if (k == "encrypted_suffix") {
      ASSIGN_OR_RETURN(m.encrypted_suffix, JsonString(v, k, source));
    } else if (k == "unencrypted_regex") {
      ASSIGN_OR_RETURN(m.unencrypted_regex, JsonString(v, k, source));
    } else if (k == "encrypted_regex") {
      ASSIGN_OR_RETURN(m.encrypted_regex, JsonString(v, k, source));
    } else if (k == "version") {
      ASSIGN_OR_RETURN(m.version, JsonString(v, k, source));
    } else if (k == "mac_only_encrypted") {
      if (v.is_boolean()) {
        m.mac_only_encrypted = v.get<bool>();
      } else if (!v.is_null()) {
        return InvalidArgument(std::string(source) + ": sops.mac_only_encrypted must be true or false");
      }
    } else {
      m.other[k] = nlohmann::json::parse(v.dump());
    }
  }
  return m;
}

Status FinishMetadata(Metadata& m, std::string_view source) {
  TRY(CheckSelectors(m, Prefix(source) + "sops: "));
  // SOPS reads a file without any selector as the default suffix rule.
  if (NoSelector(m)) m.unencrypted_suffix = std::string(kDefaultUnencryptedSuffix);
  if (m.lastmodified.empty()) {
    return InvalidArgument(Prefix(source) +
                           "sops.lastmodified is missing; the metadata block is damaged");
  }
  return Status::Ok();
}

// ----- metadata out -----

Value StringLeaf(std::string_view s) {
  Value v;
  v.kind = Value::Kind::kString;
  v.text = SecretBytes::FromString(s);
  return v;
}

Value MapOf(std::vector<std::pair<std::string, Value>> entries) {
  Value v;
  v.kind = Value::Kind::kMap;
  v.map = std::move(entries);
  return v;
}

Value JsonToYamlValue(const nlohmann::json& j) {
  ojson o = ojson::parse(j.dump());
  return internal::JsonToValue(o, false);
}

Value AgeList(const std::vector<AgeKey>& keys) {
  Value list;
  list.kind = Value::Kind::kList;
  for (const auto& k : keys) {
    std::vector<std::pair<std::string, Value>> e;
    e.emplace_back("recipient", StringLeaf(k.recipient));
    e.emplace_back("enc", StringLeaf(k.enc));
    list.list.push_back(MapOf(std::move(e)));
  }
  return list;
}

bool IsKnownOther(std::string_view k) {
  for (auto x : kOtherBeforeAge) {
    if (x == k) return true;
  }
  for (auto x : kOtherAfterMac) {
    if (x == k) return true;
  }
  for (auto x : kCommentSelectors) {
    if (x == k) return true;
  }
  return false;
}

// The metadata block, in SOPS's field order, as (key, value) entries with a
// marker for lastmodified (always written quoted in YAML).
std::vector<std::pair<std::string, Value>> MetadataEntries(const Metadata& m) {
  std::vector<std::pair<std::string, Value>> out;
  auto other = [&](std::string_view k) {
    if (!m.other.is_object()) return;
    auto it = m.other.find(std::string(k));
    if (it != m.other.end()) out.emplace_back(std::string(k), JsonToYamlValue(*it));
  };
  for (auto k : kOtherBeforeAge) other(k);
  if (!m.age.empty()) out.emplace_back("age", AgeList(m.age));
  out.emplace_back("lastmodified", StringLeaf(m.lastmodified));
  out.emplace_back("mac", StringLeaf(m.mac));
  for (auto k : kOtherAfterMac) other(k);
  if (!m.unencrypted_suffix.empty()) out.emplace_back("unencrypted_suffix", StringLeaf(m.unencrypted_suffix));
  if (!m.encrypted_suffix.empty()) out.emplace_back("encrypted_suffix", StringLeaf(m.encrypted_suffix));
  if (!m.unencrypted_regex.empty()) out.emplace_back("unencrypted_regex", StringLeaf(m.unencrypted_regex));
  if (!m.encrypted_regex.empty()) out.emplace_back("encrypted_regex", StringLeaf(m.encrypted_regex));
  for (auto k : kCommentSelectors) other(k);
  if (m.mac_only_encrypted) {
    Value b;
    b.kind = Value::Kind::kBool;
    b.text = SecretBytes::FromString("True");
    out.emplace_back("mac_only_encrypted", std::move(b));
  }
  if (m.other.is_object()) {
    for (auto it = m.other.begin(); it != m.other.end(); ++it) {
      if (!IsKnownOther(it.key())) out.emplace_back(it.key(), JsonToYamlValue(it.value()));
    }
  }
  if (!m.version.empty()) out.emplace_back("version", StringLeaf(m.version));
  return out;
}

// ----- the walks -----

// (AAD, plaintext) -> IV of the previous ciphertext, for IV reuse.
class IvCache {
 public:
  void Put(std::string_view aad, std::string_view plaintext, const std::vector<uint8_t>& iv) {
    map_.emplace(Key(aad, plaintext), iv);
  }
  const std::vector<uint8_t>* Get(std::string_view aad, std::string_view plaintext) const {
    auto it = map_.find(Key(aad, plaintext));
    return it == map_.end() ? nullptr : &it->second;
  }

 private:
  // A digest, so that no plaintext is kept in the map.
  static std::string Key(std::string_view aad, std::string_view plaintext) {
    uint8_t md[32];
    unsigned int len = 0;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    CHECK(ctx != nullptr);
    uint64_t n = aad.size();
    CHECK(EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1);
    EVP_DigestUpdate(ctx, &n, sizeof n);
    EVP_DigestUpdate(ctx, aad.data(), aad.size());
    EVP_DigestUpdate(ctx, plaintext.data(), plaintext.size());
    CHECK(EVP_DigestFinal_ex(ctx, md, &len) == 1);
    EVP_MD_CTX_free(ctx);
    return std::string(reinterpret_cast<const char*>(md), len);
  }
  std::unordered_map<std::string, std::vector<uint8_t>> map_;
};

struct Walk {
  std::vector<std::string> keys;     // map keys only (AAD, selectors)
  std::vector<std::string> display;  // with list indices ("hosts.0.name")
};

class Encryptor {
 public:
  Encryptor(const SecretBytes& key, const internal::Selector& sel, bool mac_only, const IvCache* cache)
      : key_(key), sel_(sel), mac_(mac_only), mac_only_(mac_only), cache_(cache) {}

  Result<Value> Run(const Value& v) { return Visit(v); }
  std::string Mac() { return mac_.HexDigest(); }

 private:
  Result<Value> Visit(const Value& v) {
    switch (v.kind) {
      case Value::Kind::kMap: {
        Value out;
        out.kind = Value::Kind::kMap;
        out.map.reserve(v.map.size());
        for (const auto& [k, child] : v.map) {
          w_.keys.push_back(k);
          w_.display.push_back(k);
          ASSIGN_OR_RETURN(Value c, Visit(child));
          w_.keys.pop_back();
          w_.display.pop_back();
          out.map.emplace_back(k, std::move(c));
        }
        return out;
      }
      case Value::Kind::kList: {
        Value out;
        out.kind = Value::Kind::kList;
        out.list.reserve(v.list.size());
        for (size_t i = 0; i < v.list.size(); ++i) {
          w_.display.push_back(std::to_string(i));
          ASSIGN_OR_RETURN(Value c, Visit(v.list[i]));
          w_.display.pop_back();
          out.list.push_back(std::move(c));
        }
        return out;
      }
      case Value::Kind::kNull:
        return Value{};
      default:
        break;
    }
    bool encrypted = sel_.Encrypted(w_.keys);
    if (!mac_only_ || encrypted) mac_.Add(v.text.view());
    if (!encrypted || (v.kind == Value::Kind::kString && v.text.empty())) return v.Clone();
    std::string aad = Aad(w_.keys);
    const std::vector<uint8_t>* reuse = cache_ != nullptr ? cache_->Get(aad, v.text.view()) : nullptr;
    std::vector<uint8_t> fresh;
    if (reuse == nullptr) fresh = internal::RandomBytes(internal::kIvSize);
    auto enc = internal::EncryptValue(key_, v.text.view(), aad, internal::TypeName(v.kind),
                                      reuse != nullptr ? *reuse : fresh);
    if (!enc.ok()) return enc.status().WithContext(DottedPath(w_.display));
    Value out;
    out.kind = Value::Kind::kString;
    out.text = SecretBytes::FromString(*enc);
    return out;
  }

  const SecretBytes& key_;
  const internal::Selector& sel_;
  internal::MacHasher mac_;
  bool mac_only_;
  const IvCache* cache_;
  Walk w_;
};

class Decryptor {
 public:
  // With `collect`, every value that decrypts is recorded for IV reuse and
  // values that fail are skipped instead of failing the walk.
  Decryptor(const SecretBytes& key, const internal::Selector& sel, bool mac_only,
            std::string_view source, IvCache* collect)
      : key_(key), sel_(sel), mac_(mac_only), mac_only_(mac_only), source_(source), collect_(collect) {}

  Result<Value> Run(const Value& v) { return Visit(v); }
  std::string Mac() { return mac_.HexDigest(); }

 private:
  Status Fail(std::string what) const {
    return DataLoss(Prefix(source_) + DottedPath(w_.display) + ": " + what);
  }

  Result<Value> Visit(const Value& v) {
    switch (v.kind) {
      case Value::Kind::kMap: {
        Value out;
        out.kind = Value::Kind::kMap;
        out.map.reserve(v.map.size());
        for (const auto& [k, child] : v.map) {
          w_.keys.push_back(k);
          w_.display.push_back(k);
          ASSIGN_OR_RETURN(Value c, Visit(child));
          w_.keys.pop_back();
          w_.display.pop_back();
          out.map.emplace_back(k, std::move(c));
        }
        return out;
      }
      case Value::Kind::kList: {
        Value out;
        out.kind = Value::Kind::kList;
        out.list.reserve(v.list.size());
        for (size_t i = 0; i < v.list.size(); ++i) {
          w_.display.push_back(std::to_string(i));
          ASSIGN_OR_RETURN(Value c, Visit(v.list[i]));
          w_.display.pop_back();
          out.list.push_back(std::move(c));
        }
        return out;
      }
      case Value::Kind::kNull:
        return Value{};
      default:
        break;
    }
    bool encrypted = sel_.Encrypted(w_.keys);
    if (!encrypted) {
      if (!mac_only_) mac_.Add(v.text.view());
      return v.Clone();
    }
    if (v.kind == Value::Kind::kString && v.text.empty()) return v.Clone();
    if (v.kind != Value::Kind::kString || !internal::LooksEncrypted(v.text.view())) {
      if (collect_ != nullptr) return v.Clone();
      return Fail(std::string("expected an encrypted value (ENC[...]) but found a plain ") +
                  (v.kind == Value::Kind::kString ? "string" : std::string(internal::TypeName(v.kind))) +
                  "; the file was changed without SOPS, or its unencrypted_suffix / encrypted_regex "
                  "setting does not match its values");
    }
    internal::EncValue ev;
    std::string why;
    if (!internal::ParseEncValue(v.text.view(), &ev, &why)) {
      if (collect_ != nullptr) return v.Clone();
      return Fail(why);
    }
    std::string aad = Aad(w_.keys);
    auto plain = internal::DecryptValue(key_, ev, aad);
    if (!plain.ok()) {
      if (collect_ != nullptr) return v.Clone();
      return Fail(
          "cannot decrypt: authentication failed (wrong data key, or the value or its key path "
          "was changed)");
    }
    if (collect_ != nullptr) collect_->Put(aad, plain->view(), ev.iv);
    auto leaf = internal::LeafFromDecrypted(std::move(plain).value(), ev.type);
    if (!leaf.ok()) {
      if (collect_ != nullptr) return v.Clone();
      return Fail(leaf.status().message());
    }
    mac_.Add(leaf->text.view());
    return std::move(leaf).value();
  }

  const SecretBytes& key_;
  const internal::Selector& sel_;
  internal::MacHasher mac_;
  bool mac_only_;
  std::string_view source_;
  IvCache* collect_;
  Walk w_;
};

const Clock& ClockOr(const Clock* c) { return c != nullptr ? *c : SystemClock(); }

Result<std::string> EncryptMac(const SecretBytes& key, const std::string& mac_hex,
                               const std::string& lastmodified) {
  return internal::EncryptValue(key, mac_hex, lastmodified, "str",
                                internal::RandomBytes(internal::kIvSize));
}

// Checks that `key` is the file's data key (it opens the MAC, or a value).
Status VerifyDataKey(const EncryptedFile& file, const SecretBytes& key, std::string_view source) {
  if (key.size() != internal::kDataKeySize) {
    return InvalidArgument(Prefix(source) + "the data key must be 32 bytes");
  }
  internal::EncValue ev;
  std::string why;
  if (!file.metadata.mac.empty() && internal::ParseEncValue(file.metadata.mac, &ev, &why)) {
    if (internal::DecryptValue(key, ev, file.metadata.lastmodified).ok()) return Status::Ok();
    return DataLoss(Prefix(source) +
                    "the data key does not open this file's MAC (wrong data key, or "
                    "sops.lastmodified or sops.mac was changed)");
  }
  return Status::Ok();
}

Result<std::string> WrapDataKey(const SecretBytes& key, const age::Recipient& r) {
  age::EncryptOptions o;
  o.recipients.push_back(r);
  o.armor = true;
  auto enc = age::EncryptToString(key.view(), o);
  if (!enc.ok()) return enc.status().WithContext("encrypting the data key to " + r.Encode());
  return enc;
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

namespace internal {

Result<Selector> Selector::Make(const Metadata& m) {
  TRY(CheckSelectors(m, "sops: "));
  Selector s;
  auto make_regex = [](const std::string& pattern, const char* field) -> Result<std::shared_ptr<std::regex>> {
    std::string p = pattern;
    auto flags = std::regex::ECMAScript;
    if (StartsWith(p, "(?i)")) {  // the one RE2 flag group people use
      p = p.substr(4);
      flags |= std::regex::icase;
    }
    try {
      return std::make_shared<std::regex>(p, flags);
    } catch (const std::regex_error&) {
      return InvalidArgument(std::string("sops.") + field + ": invalid regular expression \"" +
                             pattern + "\"");
    }
  };
  if (!m.unencrypted_suffix.empty()) {
    s.mode_ = Mode::kUnencryptedSuffix;
    s.suffix_ = m.unencrypted_suffix;
  } else if (!m.encrypted_suffix.empty()) {
    s.mode_ = Mode::kEncryptedSuffix;
    s.suffix_ = m.encrypted_suffix;
  } else if (!m.unencrypted_regex.empty()) {
    s.mode_ = Mode::kUnencryptedRegex;
    ASSIGN_OR_RETURN(s.regex_, make_regex(m.unencrypted_regex, "unencrypted_regex"));
  } else if (!m.encrypted_regex.empty()) {
    s.mode_ = Mode::kEncryptedRegex;
    ASSIGN_OR_RETURN(s.regex_, make_regex(m.encrypted_regex, "encrypted_regex"));
  }
  return s;
}

bool Selector::Encrypted(const std::vector<std::string>& path) const {
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  switch (mode_) {
    case Mode::kNone:
      return true;
    case Mode::kUnencryptedSuffix:
      return std::none_of(path.begin(), path.end(), [&](const std::string& k) { return ends_with(k, suffix_); });
    case Mode::kEncryptedSuffix:
      return std::any_of(path.begin(), path.end(), [&](const std::string& k) { return ends_with(k, suffix_); });
    case Mode::kUnencryptedRegex:
      return std::none_of(path.begin(), path.end(),
                          [&](const std::string& k) { return std::regex_search(k, *regex_); });
    case Mode::kEncryptedRegex:
      return std::any_of(path.begin(), path.end(),
                         [&](const std::string& k) { return std::regex_search(k, *regex_); });
  }
  return true;
}

std::string FormatLastModified(std::chrono::system_clock::time_point t) {
  time_t secs = std::chrono::system_clock::to_time_t(t);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<EncryptedFile> EncryptWithDataKey(const Value& plain, Format format,
                                         const EncryptOptions& options, const SecretBytes& data_key) {
  if (plain.kind != Value::Kind::kMap) {
    return InvalidArgument("the document must be a mapping at the top level");
  }
  for (const auto& [k, v] : plain.map) {
    if (k == "sops") {
      return InvalidArgument(
          "the document already has a top-level \"sops\" key: it is already encrypted (decrypt it "
          "first), or rename that key");
    }
  }
  EncryptedFile file;
  file.format = format;
  Metadata& m = file.metadata;
  m.unencrypted_suffix = options.unencrypted_suffix;
  m.encrypted_suffix = options.encrypted_suffix;
  m.unencrypted_regex = options.unencrypted_regex;
  m.encrypted_regex = options.encrypted_regex;
  m.mac_only_encrypted = options.mac_only_encrypted;
  m.other = nlohmann::json::object();
  if (NoSelector(m)) m.unencrypted_suffix = std::string(kDefaultUnencryptedSuffix);
  ASSIGN_OR_RETURN(Selector sel, Selector::Make(m));
  m.lastmodified = FormatLastModified(ClockOr(options.clock).Now());
  Encryptor enc(data_key, sel, m.mac_only_encrypted, nullptr);
  ASSIGN_OR_RETURN(file.tree, enc.Run(plain));
  ASSIGN_OR_RETURN(m.mac, EncryptMac(data_key, enc.Mac(), m.lastmodified));
  return file;
}

}  // namespace internal

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

Format FormatForPath(std::string_view path) {
  if (path.size() >= 5) {
    std::string ext(path.substr(path.size() - 5));
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".json") return Format::kJson;
  }
  return Format::kYaml;
}

Value::Value() = default;
Value::~Value() = default;
Value::Value(Value&&) noexcept = default;
Value& Value::operator=(Value&&) noexcept = default;

Value Value::Clone() const {
  Value v;
  v.kind = kind;
  v.text = text.Clone();
  v.map.reserve(map.size());
  for (const auto& [k, child] : map) v.map.emplace_back(k, child.Clone());
  v.list.reserve(list.size());
  for (const auto& child : list) v.list.push_back(child.Clone());
  return v;
}

Result<EncryptedFile> Parse(std::string_view text, Format format, std::string_view source) {
  EncryptedFile file;
  file.format = format;
  const std::string missing =
      Prefix(source) +
      "no SOPS metadata (top-level key \"sops\"): this is not a SOPS-encrypted file, or its "
      "metadata was removed; encrypt a plaintext file with 'hearth secret encrypt --sops'";
  if (format == Format::kYaml) {
    ASSIGN_OR_RETURN(Node root, internal::ParseYamlNode(text, source));
    auto it = std::find_if(root.map.begin(), root.map.end(),
                           [](const Node::Entry& e) { return e.key == "sops"; });
    if (it == root.map.end()) return NotFound(missing);
    Node block = std::move(it->value);
    int line = it->line, column = it->column;
    root.map.erase(it);
    ASSIGN_OR_RETURN(file.metadata, MetadataFromYaml(std::move(block), source, line, column));
    file.tree = internal::NodeToValue(std::move(root));
  } else {
    ojson block;
    ASSIGN_OR_RETURN(file.tree, internal::ParseJsonValue(text, source, &block));
    if (block.is_null()) return NotFound(missing);
    ASSIGN_OR_RETURN(file.metadata, MetadataFromJson(block, source));
  }
  TRY(FinishMetadata(file.metadata, source));
  return file;
}

std::string Serialize(const EncryptedFile& file) {
  auto entries = MetadataEntries(file.metadata);
  if (file.format == Format::kJson) {
    ojson doc = internal::ValueToJson(file.tree);
    if (!doc.is_object()) doc = ojson::object();
    ojson meta = internal::ValueToJson(MapOf(std::move(entries)));
    doc["sops"] = std::move(meta);
    return internal::DumpJson(doc);
  }
  std::string out;
  if (file.tree.kind == Value::Kind::kMap) internal::EmitYamlMapEntries(file.tree, 0, out);
  out += "sops:\n";
  for (auto& e : entries) {
    if (e.first == "lastmodified") {
      out += "    lastmodified: " + internal::QuoteYamlDouble(e.second.text.view()) + "\n";
      continue;
    }
    std::vector<std::pair<std::string, Value>> one;
    one.push_back(std::move(e));
    internal::EmitYamlMapEntries(MapOf(std::move(one)), 4, out);
  }
  return out;
}

Result<Value> ParsePlain(std::string_view text, Format format, std::string_view source) {
  if (format == Format::kJson) return internal::ParseJsonValue(text, source, nullptr);
  ASSIGN_OR_RETURN(Node root, internal::ParseYamlNode(text, source));
  return internal::NodeToValue(std::move(root));
}

std::string SerializePlain(const Value& tree, Format format) {
  if (format == Format::kJson) return internal::DumpJson(internal::ValueToJson(tree));
  return internal::EmitYaml(tree);
}

Result<EncryptedFile> Encrypt(const Value& plain, Format format, const EncryptOptions& options) {
  if (options.recipients.empty()) {
    return InvalidArgument("no recipients: pass at least one age1... recipient to encrypt to");
  }
  SecretBytes key(internal::kDataKeySize);
  std::vector<uint8_t> raw = internal::RandomBytes(internal::kDataKeySize);
  std::copy(raw.begin(), raw.end(), key.data());
  SecureZero(raw.data(), raw.size());
  ASSIGN_OR_RETURN(EncryptedFile file, internal::EncryptWithDataKey(plain, format, options, key));
  std::set<std::string> seen;
  for (const auto& r : options.recipients) {
    std::string name = r.Encode();
    if (!seen.insert(name).second) continue;
    ASSIGN_OR_RETURN(std::string enc, WrapDataKey(key, r));
    file.metadata.age.push_back(AgeKey{name, std::move(enc)});
  }
  return file;
}

Result<SecretBytes> DataKey(const EncryptedFile& file, const std::vector<age::Identity>& identities,
                            std::string_view source) {
  const Metadata& m = file.metadata;
  if (OtherHas(m, "key_groups")) {
    return FailedPrecondition(Prefix(source) +
                              "this file uses SOPS key groups (Shamir secret sharing), which Hearth "
                              "does not support; decrypt it with sops");
  }
  if (m.age.empty()) {
    auto foreign = ForeignMasterKeys(m);
    return FailedPrecondition(
        Prefix(source) + "the file has no age recipients" +
        (foreign.empty() ? std::string() : " (it has " + Join(foreign, ", ") + " keys)") +
        "; Hearth opens SOPS files through age only: add an age recipient with sops "
        "updatekeys, or decrypt with sops");
  }
  std::vector<std::string> file_recipients;
  std::vector<std::string> damaged;
  for (const auto& k : m.age) file_recipients.push_back(k.recipient);
  if (!identities.empty()) {
    age::DecryptOptions o;
    for (const auto& id : identities) {
      // Identity is move-only: copy it through its encoding.
      SecretBytes encoded = id.Encode();
      ASSIGN_OR_RETURN(age::Identity copy, age::Identity::Parse(encoded.view()));
      o.identities.push_back(std::move(copy));
    }
    for (size_t i = 0; i < m.age.size(); ++i) {
      age::FailureKind kind = age::FailureKind::kNone;
      auto key = age::DecryptToSecret(m.age[i].enc, o, &kind);
      if (key.ok()) {
        if (key->size() != internal::kDataKeySize) {
          return DataLoss(Prefix(source) + "sops.age[" + std::to_string(i) + "] (" + m.age[i].recipient +
                          "): the data key is " + std::to_string(key->size()) +
                          " bytes, expected 32; the metadata is damaged");
        }
        return key;
      }
      if (kind != age::FailureKind::kNoMatch) {
        damaged.push_back("sops.age[" + std::to_string(i) + "] (" + m.age[i].recipient +
                          "): " + key.status().message());
      }
    }
  }
  std::vector<std::string> mine;
  for (const auto& id : identities) mine.push_back(id.Recipient());
  std::string msg = Prefix(source) + "none of your identities can open the data key. The file is encrypted to: " +
                    Join(file_recipients, ", ") + ". ";
  msg += identities.empty() ? std::string("No identities were given.")
                            : "Your identities are for: " + Join(mine, ", ") + ".";
  if (!damaged.empty()) msg += " Damaged entries: " + Join(damaged, "; ") + ".";
  msg += " Ask someone who can decrypt the file to add your recipient (hearth secret updatekeys --add age1...).";
  return NotFound(msg);
}

Result<Value> Decrypt(const EncryptedFile& file, const SecretBytes& data_key, std::string_view source,
                      bool ignore_mac) {
  if (data_key.size() != internal::kDataKeySize) {
    return InvalidArgument(Prefix(source) + "the data key must be 32 bytes");
  }
  const Metadata& m = file.metadata;
  auto sel = internal::Selector::Make(m);
  if (!sel.ok()) return sel.status().WithContext(std::string(source));
  Decryptor dec(data_key, *sel, m.mac_only_encrypted, source, nullptr);
  ASSIGN_OR_RETURN(Value plain, dec.Run(file.tree));
  std::string computed = dec.Mac();
  if (ignore_mac) return plain;
  if (m.mac.empty()) {
    return DataLoss(Prefix(source) +
                    "the file has no MAC (sops.mac), so its values cannot be verified; it was "
                    "truncated or edited by hand. Use --ignore-mac to decrypt it anyway");
  }
  internal::EncValue ev;
  std::string why;
  if (!internal::ParseEncValue(m.mac, &ev, &why)) return DataLoss(Prefix(source) + "sops.mac: " + why);
  auto stored = internal::DecryptValue(data_key, ev, m.lastmodified);
  if (!stored.ok()) {
    return DataLoss(Prefix(source) +
                    "sops.mac: cannot decrypt: authentication failed (wrong data key, or "
                    "sops.lastmodified or sops.mac was changed). Use --ignore-mac to decrypt the "
                    "values anyway");
  }
  if (Upper(std::string(stored->view())) != computed) {
    return DataLoss(Prefix(source) +
                    "the file's MAC does not match its values: values were reordered, added or "
                    "removed, or the file was tampered with. If you changed it by hand on purpose, "
                    "decrypt with --ignore-mac, check the values, and encrypt it again");
  }
  return plain;
}

Result<EncryptedFile> Reencrypt(const Value& plain, const EncryptedFile& previous,
                                const SecretBytes& data_key, const Clock* clock) {
  TRY(VerifyDataKey(previous, data_key, ""));
  if (plain.kind != Value::Kind::kMap) {
    return InvalidArgument("the document must be a mapping at the top level");
  }
  for (const auto& [k, v] : plain.map) {
    if (k == "sops") return InvalidArgument("the document has a top-level \"sops\" key; rename it");
  }
  ASSIGN_OR_RETURN(internal::Selector sel, internal::Selector::Make(previous.metadata));
  IvCache cache;
  {
    Decryptor collect(data_key, sel, previous.metadata.mac_only_encrypted, "", &cache);
    auto ignored = collect.Run(previous.tree);
    (void)ignored;
  }
  EncryptedFile file;
  file.format = previous.format;
  file.metadata = previous.metadata;
  file.metadata.lastmodified = internal::FormatLastModified(ClockOr(clock).Now());
  Encryptor enc(data_key, sel, file.metadata.mac_only_encrypted, &cache);
  ASSIGN_OR_RETURN(file.tree, enc.Run(plain));
  ASSIGN_OR_RETURN(file.metadata.mac, EncryptMac(data_key, enc.Mac(), file.metadata.lastmodified));
  return file;
}

Result<EncryptedFile> Rotate(const EncryptedFile& file, const SecretBytes& data_key, const Clock* clock) {
  auto foreign = ForeignMasterKeys(file.metadata);
  if (!foreign.empty()) {
    return FailedPrecondition("the file also has " + Join(foreign, ", ") +
                              " keys, which Hearth cannot re-wrap; rotate it with sops");
  }
  if (file.metadata.age.empty()) return FailedPrecondition("the file has no age recipients to rotate to");
  std::vector<age::Recipient> recipients;
  for (const auto& k : file.metadata.age) {
    ASSIGN_OR_RETURN(age::Recipient r, age::Recipient::Parse(k.recipient));
    recipients.push_back(r);
  }
  ASSIGN_OR_RETURN(Value plain, Decrypt(file, data_key, ""));
  SecretBytes key(internal::kDataKeySize);
  std::vector<uint8_t> raw = internal::RandomBytes(internal::kDataKeySize);
  std::copy(raw.begin(), raw.end(), key.data());
  SecureZero(raw.data(), raw.size());

  EncryptedFile out;
  out.format = file.format;
  out.metadata = file.metadata;
  out.metadata.lastmodified = internal::FormatLastModified(ClockOr(clock).Now());
  ASSIGN_OR_RETURN(internal::Selector sel, internal::Selector::Make(out.metadata));
  Encryptor enc(key, sel, out.metadata.mac_only_encrypted, nullptr);
  ASSIGN_OR_RETURN(out.tree, enc.Run(plain));
  ASSIGN_OR_RETURN(out.metadata.mac, EncryptMac(key, enc.Mac(), out.metadata.lastmodified));
  out.metadata.age.clear();
  for (const auto& r : recipients) {
    ASSIGN_OR_RETURN(std::string wrapped, WrapDataKey(key, r));
    out.metadata.age.push_back(AgeKey{r.Encode(), std::move(wrapped)});
  }
  return out;
}

Result<EncryptedFile> UpdateKeys(const EncryptedFile& file, const SecretBytes& data_key,
                                 const std::vector<age::Recipient>& recipients) {
  if (recipients.empty()) {
    return InvalidArgument("no recipients left: a SOPS file needs at least one age recipient");
  }
  TRY(VerifyDataKey(file, data_key, ""));
  EncryptedFile out;
  out.format = file.format;
  out.tree = file.tree.Clone();
  out.metadata = file.metadata;
  out.metadata.age.clear();
  std::set<std::string> seen;
  for (const auto& r : recipients) {
    std::string name = r.Encode();
    if (!seen.insert(name).second) continue;
    auto it = std::find_if(file.metadata.age.begin(), file.metadata.age.end(),
                           [&](const AgeKey& k) { return k.recipient == name; });
    if (it != file.metadata.age.end()) {
      out.metadata.age.push_back(*it);
      continue;
    }
    ASSIGN_OR_RETURN(std::string wrapped, WrapDataKey(data_key, r));
    out.metadata.age.push_back(AgeKey{name, std::move(wrapped)});
  }
  return out;
}

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

namespace {

bool ParseIndex(std::string_view s, size_t* out) {
  if (s.empty() || s.size() > 9) return false;
  size_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  *out = v;
  return true;
}

// At a map, the entry whose key is the longest prefix of `rest` ending at a
// '.' (or all of it), so keys that contain dots can be addressed too.
// Returns the index and sets *consumed (including the dot).
std::optional<size_t> MatchKey(const Value& map, std::string_view rest, size_t* consumed) {
  std::optional<size_t> best;
  size_t best_len = 0;
  for (size_t i = 0; i < map.map.size(); ++i) {
    const std::string& k = map.map[i].first;
    if (k.size() > rest.size() || rest.compare(0, k.size(), k) != 0) continue;
    if (k.size() != rest.size() && rest[k.size()] != '.') continue;
    if (!best || k.size() > best_len) {
      best = i;
      best_len = k.size();
    }
  }
  if (best) *consumed = best_len == rest.size() ? best_len : best_len + 1;
  return best;
}

}  // namespace

const Value* Find(const Value& tree, std::string_view dotted_path) {
  const Value* cur = &tree;
  std::string_view rest = dotted_path;
  while (!rest.empty()) {
    if (cur->kind == Value::Kind::kMap) {
      size_t consumed = 0;
      auto i = MatchKey(*cur, rest, &consumed);
      if (!i) return nullptr;
      cur = &cur->map[*i].second;
      rest.remove_prefix(consumed);
    } else if (cur->kind == Value::Kind::kList) {
      size_t dot = rest.find('.');
      size_t idx;
      if (!ParseIndex(rest.substr(0, dot), &idx) || idx >= cur->list.size()) return nullptr;
      cur = &cur->list[idx];
      rest.remove_prefix(dot == std::string_view::npos ? rest.size() : dot + 1);
    } else {
      return nullptr;
    }
  }
  return cur;
}

Status Set(Value& tree, std::string_view dotted_path, Value value) {
  if (dotted_path.empty()) return InvalidArgument("empty key path");
  if (tree.kind != Value::Kind::kMap) return InvalidArgument("the document is not a mapping");
  Value* cur = &tree;
  std::string_view rest = dotted_path;
  std::string done;
  auto here = [&] { return done.empty() ? std::string("the document") : done; };
  auto add = [&done](const std::string& seg) {
    if (!done.empty()) done.push_back('.');
    done.append(seg);
  };
  while (true) {
    if (cur->kind == Value::Kind::kMap) {
      size_t consumed = 0;
      auto i = MatchKey(*cur, rest, &consumed);
      if (!i) {
        // A new key: the next segment, creating maps for the rest.
        size_t dot = rest.find('.');
        std::string key(rest.substr(0, dot));
        if (key.empty()) return InvalidArgument(std::string(dotted_path) + ": empty key in the path");
        Value child;
        child.kind = Value::Kind::kMap;
        cur->map.emplace_back(key, std::move(child));
        cur = &cur->map.back().second;
        if (dot == std::string_view::npos) {
          *cur = std::move(value);
          return Status::Ok();
        }
        add(key);
        rest.remove_prefix(dot + 1);
        continue;
      }
      add(cur->map[*i].first);
      cur = &cur->map[*i].second;
      rest.remove_prefix(consumed);
    } else if (cur->kind == Value::Kind::kList) {
      size_t dot = rest.find('.');
      size_t idx;
      if (!ParseIndex(rest.substr(0, dot), &idx) || idx >= cur->list.size()) {
        return InvalidArgument(std::string(dotted_path) + ": " + here() + " is a list of " +
                               std::to_string(cur->list.size()) +
                               " items; use an index from 0 to " +
                               std::to_string(cur->list.empty() ? 0 : cur->list.size() - 1));
      }
      add(std::to_string(idx));
      cur = &cur->list[idx];
      rest.remove_prefix(dot == std::string_view::npos ? rest.size() : dot + 1);
    } else if (!rest.empty()) {
      return InvalidArgument(std::string(dotted_path) + ": " + here() +
                             " is a value, not a mapping; it has no keys below it");
    }
    if (rest.empty()) {
      *cur = std::move(value);
      return Status::Ok();
    }
  }
}

std::vector<std::string> LeafPaths(const Value& tree) {
  std::vector<std::string> out;
  struct Item {
    const Value* v;
    std::string path;
  };
  std::vector<Item> stack{{&tree, ""}};
  while (!stack.empty()) {
    Item it = std::move(stack.back());
    stack.pop_back();
    auto join = [&](const std::string& seg) { return it.path.empty() ? seg : it.path + "." + seg; };
    if (it.v->kind == Value::Kind::kMap) {
      for (size_t i = it.v->map.size(); i-- > 0;) {
        stack.push_back({&it.v->map[i].second, join(it.v->map[i].first)});
      }
    } else if (it.v->kind == Value::Kind::kList) {
      for (size_t i = it.v->list.size(); i-- > 0;) stack.push_back({&it.v->list[i], join(std::to_string(i))});
    } else if (!it.path.empty()) {
      out.push_back(std::move(it.path));
    }
  }
  return out;
}

bool Equal(const Value& a, const Value& b) {
  if (a.kind != b.kind || !(a.text == b.text)) return false;
  if (a.map.size() != b.map.size() || a.list.size() != b.list.size()) return false;
  for (size_t i = 0; i < a.map.size(); ++i) {
    if (a.map[i].first != b.map[i].first || !Equal(a.map[i].second, b.map[i].second)) return false;
  }
  for (size_t i = 0; i < a.list.size(); ++i) {
    if (!Equal(a.list[i], b.list[i])) return false;
  }
  return true;
}

nlohmann::ordered_json ToJson(const Value& tree) { return internal::ValueToJson(tree); }

// ---------------------------------------------------------------------------
// Identities
// ---------------------------------------------------------------------------

namespace {

std::optional<std::string> GetEnv(const IdentitySources& s, const std::string& name) {
  if (s.env != nullptr) {
    auto it = s.env->find(name);
    if (it == s.env->end() || it->second.empty()) return std::nullopt;
    return it->second;
  }
  const char* v = std::getenv(name.c_str());
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

Result<std::vector<age::Identity>> ReadKeyFile(const std::string& path, const std::string& what) {
  auto text = ReadFile(path);
  if (!text.ok()) {
    return Status(text.status().code(), what + ": " + text.status().message());
  }
  auto ids = age::ParseIdentities(*text, path);
  SecureZero(text->data(), text->size());
  if (!ids.ok()) return ids.status().WithContext(what);
  return ids;
}

}  // namespace

std::string DescribeIdentitySource(const IdentitySources& sources) {
  if (!sources.hearth_key_file.empty()) return "the Hearth identity file " + sources.hearth_key_file;
  if (GetEnv(sources, "SOPS_AGE_KEY")) return "SOPS_AGE_KEY";
  if (auto file = GetEnv(sources, "SOPS_AGE_KEY_FILE")) return "SOPS_AGE_KEY_FILE=" + *file;
  if (auto xdg = GetEnv(sources, "XDG_CONFIG_HOME")) return *xdg + "/sops/age/keys.txt";
  if (auto home = GetEnv(sources, "HOME")) return *home + "/.config/sops/age/keys.txt";
  return "no identity source";
}

Result<std::vector<age::Identity>> FindIdentities(const IdentitySources& sources) {
  if (!sources.hearth_key_file.empty()) {
    return ReadKeyFile(sources.hearth_key_file, "Hearth identity file " + sources.hearth_key_file);
  }
  if (auto inline_keys = GetEnv(sources, "SOPS_AGE_KEY")) {
    auto ids = age::ParseIdentities(*inline_keys, "SOPS_AGE_KEY");
    SecureZero(inline_keys->data(), inline_keys->size());
    if (!ids.ok()) return ids.status().WithContext("SOPS_AGE_KEY");
    return ids;
  }
  if (auto file = GetEnv(sources, "SOPS_AGE_KEY_FILE")) {
    return ReadKeyFile(*file, "SOPS_AGE_KEY_FILE=" + *file);
  }
  std::string path;
  std::vector<std::string> looked = {"--identity / HEARTH_AGE_KEY_FILE (not set)",
                                     "SOPS_AGE_KEY (not set)", "SOPS_AGE_KEY_FILE (not set)"};
  if (auto xdg = GetEnv(sources, "XDG_CONFIG_HOME")) {
    path = *xdg + "/sops/age/keys.txt";
  } else if (auto home = GetEnv(sources, "HOME")) {
    path = *home + "/.config/sops/age/keys.txt";
  }
  if (!path.empty()) {
    auto text = ReadFile(path);
    if (text.ok()) {
      auto ids = age::ParseIdentities(*text, path);
      SecureZero(text->data(), text->size());
      return ids;
    }
    if (text.status().code() != StatusCode::kNotFound) return text.status();
    looked.push_back(path + " (no such file)");
  } else {
    looked.push_back("$XDG_CONFIG_HOME/sops/age/keys.txt and ~/.config/sops/age/keys.txt (neither "
                     "XDG_CONFIG_HOME nor HOME is set)");
  }
  return NotFound("no age identity found; looked at: " + Join(looked, "; ") +
                  ". Pass -i FILE, or set HEARTH_AGE_KEY_FILE or SOPS_AGE_KEY_FILE");
}

}  // namespace hearth::sops
