// JSON for SOPS documents: nlohmann::ordered_json (key order kept), with
// duplicate keys and deep nesting refused, and SOPS's tab indentation.
#include <cmath>
#include <cstdlib>
#include <unordered_set>

#include "sops/sops_internal.h"

namespace hearth::sops::internal {

namespace {

using ojson = nlohmann::ordered_json;

// 1-based line and column of byte offset `pos`.
std::string LineCol(std::string_view text, size_t pos) {
  int line = 1, col = 1;
  for (size_t i = 0; i < pos && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return std::to_string(line) + ":" + std::to_string(col);
}

// Refuses nesting deeper than kMaxDepth before nlohmann builds anything.
Status CheckDepth(std::string_view text, std::string_view source) {
  int depth = 0;
  bool in_string = false, escape = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (escape) {
        escape = false;
      } else if (c == '\\') {
        escape = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxDepth) {
        return InvalidArgument(std::string(source) + ":" + LineCol(text, i) + ": nested deeper than " +
                               std::to_string(kMaxDepth) + " levels");
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return Status::Ok();
}

// The part of nlohmann's message that describes the problem, without the
// "last read: '...'" excerpt of the input (it could be a secret).
std::string DescribeParseError(const std::string& what) {
  std::string msg = what;
  size_t col = msg.find("column ");
  if (col != std::string::npos) {
    size_t colon = msg.find(": ", col);
    if (colon != std::string::npos) msg = msg.substr(colon + 2);
  } else if (size_t br = msg.find("] "); br != std::string::npos) {
    msg = msg.substr(br + 2);
  }
  size_t lr = msg.find("; last read");
  if (lr != std::string::npos) msg = msg.substr(0, lr);
  return msg;
}

void WipeStrings(ojson& j) {
  if (j.is_string()) {
    auto& s = j.get_ref<std::string&>();
    SecureZero(s.data(), s.size());
  } else if (j.is_structured()) {
    for (auto& child : j) WipeStrings(child);
  }
}

}  // namespace

Value JsonToValue(ojson& j, bool wipe) {
  Value v;
  switch (j.type()) {
    case ojson::value_t::object:
      v.kind = Value::Kind::kMap;
      v.map.reserve(j.size());
      for (auto& [k, child] : j.items()) v.map.emplace_back(k, JsonToValue(child, wipe));
      return v;
    case ojson::value_t::array:
      v.kind = Value::Kind::kList;
      v.list.reserve(j.size());
      for (auto& child : j) v.list.push_back(JsonToValue(child, wipe));
      return v;
    case ojson::value_t::string: {
      auto& s = j.get_ref<std::string&>();
      v.kind = Value::Kind::kString;
      v.text = SecretBytes::FromString(s);
      if (wipe) SecureZero(s.data(), s.size());
      return v;
    }
    case ojson::value_t::boolean:
      v.kind = Value::Kind::kBool;
      v.text = SecretBytes::FromString(j.get<bool>() ? "True" : "False");
      return v;
    case ojson::value_t::number_integer:
      v.kind = Value::Kind::kInt;
      v.text = SecretBytes::FromString(std::to_string(j.get<int64_t>()));
      return v;
    case ojson::value_t::number_unsigned:
      v.kind = Value::Kind::kInt;
      v.text = SecretBytes::FromString(std::to_string(j.get<uint64_t>()));
      return v;
    case ojson::value_t::number_float:
      v.kind = Value::Kind::kFloat;
      v.text = SecretBytes::FromString(FormatFloat(j.get<double>()));
      return v;
    default:
      return v;  // null, discarded, binary
  }
}

ojson ValueToJson(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kNull:
      return nullptr;
    case Value::Kind::kString:
      return std::string(v.text.view());
    case Value::Kind::kBool:
      return v.text.view() == "True";
    case Value::Kind::kInt: {
      std::string t(v.text.view());
      char* end = nullptr;
      errno = 0;
      if (!t.empty() && t[0] == '-') {
        long long n = std::strtoll(t.c_str(), &end, 10);
        if (errno == 0 && end == t.c_str() + t.size()) return static_cast<int64_t>(n);
      } else if (!t.empty()) {
        unsigned long long n = std::strtoull(t.c_str(), &end, 10);
        if (errno == 0 && end == t.c_str() + t.size()) return static_cast<uint64_t>(n);
      }
      return t;
    }
    case Value::Kind::kFloat: {
      std::string t(v.text.view());
      char* end = nullptr;
      double d = std::strtod(t.c_str(), &end);
      if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(d)) return t;
      // Like Go's encoding/json: integral values print without ".0".
      if (d == std::trunc(d) && std::fabs(d) < 9.2e18 && !(d == 0 && std::signbit(d))) {
        return static_cast<int64_t>(d);
      }
      return d;
    }
    case Value::Kind::kMap: {
      ojson o = ojson::object();
      for (const auto& [k, child] : v.map) o[k] = ValueToJson(child);
      return o;
    }
    case Value::Kind::kList: {
      ojson a = ojson::array();
      for (const auto& child : v.list) a.push_back(ValueToJson(child));
      return a;
    }
  }
  return nullptr;
}

Result<Value> ParseJsonValue(std::string_view text, std::string_view source, ojson* sops_block) {
  TRY(CheckDepth(text, source));
  std::vector<std::unordered_set<std::string>> keys;
  std::string problem;
  auto callback = [&](int /*depth*/, ojson::parse_event_t event, ojson& parsed) -> bool {
    switch (event) {
      case ojson::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case ojson::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case ojson::parse_event_t::key: {
        if (!parsed.is_string() || keys.empty()) break;
        const auto& k = parsed.get_ref<const std::string&>();
        if (problem.empty() && k.size() > kMaxKeyBytes) {
          problem = "a key is longer than " + std::to_string(kMaxKeyBytes) + " bytes";
        }
        if (problem.empty() && !keys.back().insert(k).second) {
          problem = "duplicate key \"" + k + "\" in an object; each key may appear once";
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  ojson j;
  try {
    j = ojson::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                     /*ignore_comments=*/false);
  } catch (const ojson::parse_error& e) {
    return InvalidArgument(std::string(source) + ":" + LineCol(text, e.byte > 0 ? e.byte - 1 : 0) +
                           ": invalid JSON: " + DescribeParseError(e.what()));
  } catch (const ojson::exception& e) {
    return InvalidArgument(std::string(source) + ": invalid JSON: " + DescribeParseError(e.what()));
  }
  if (!problem.empty()) {
    WipeStrings(j);
    return InvalidArgument(std::string(source) + ": " + problem);
  }
  if (!j.is_object()) {
    WipeStrings(j);
    return InvalidArgument(std::string(source) +
                           ": the document must be a JSON object ({...}) at the top level; wrap "
                           "other values in one, e.g. {\"data\": [...]}");
  }
  if (sops_block != nullptr) {
    auto it = j.find("sops");
    if (it != j.end()) {
      *sops_block = std::move(*it);
      j.erase(it);
    } else {
      *sops_block = nullptr;
    }
  }
  return JsonToValue(j, /*wipe=*/true);
}

std::string DumpJson(const ojson& j) {
  return j.dump(1, '\t', false, ojson::error_handler_t::replace) + "\n";
}

}  // namespace hearth::sops::internal
