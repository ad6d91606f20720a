// YAML for SOPS documents: a libyaml event reader (explicit stack, no
// aliases, one document) and a writer in SOPS's layout (go-yaml v3 with
// 4-space indentation).
#include <yaml.h>

#include <cstring>
#include <unordered_set>

#include "sops/sops_internal.h"

namespace hearth::sops::internal {

namespace {

std::string Where(std::string_view source, const yaml_mark_t& m) {
  return std::string(source) + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

struct ParserGuard {
  yaml_parser_t parser;
  bool initialised = false;
  ~ParserGuard() {
    if (initialised) yaml_parser_delete(&parser);
  }
};

// Deletes an event, zeroing scalar text first (it may be a secret).
struct EventGuard {
  yaml_event_t event;
  bool live = false;
  ~EventGuard() { Reset(); }
  void Reset() {
    if (!live) return;
    if (event.type == YAML_SCALAR_EVENT && event.data.scalar.value != nullptr) {
      SecureZero(event.data.scalar.value, event.data.scalar.length);
    }
    yaml_event_delete(&event);
    live = false;
  }
};

bool IsStrTag(const yaml_char_t* tag) {
  if (tag == nullptr) return false;
  const char* t = reinterpret_cast<const char*>(tag);
  return std::strcmp(t, "tag:yaml.org,2002:str") == 0 ||
         std::strcmp(t, "tag:yaml.org,2002:binary") == 0;
}

}  // namespace

Node::Node() = default;
Node::~Node() = default;
Node::Node(Node&&) noexcept = default;
Node& Node::operator=(Node&&) noexcept = default;

Result<Node> ParseYamlNode(std::string_view text, std::string_view source) {
  ParserGuard pg;
  if (!yaml_parser_initialize(&pg.parser)) return Internal("cannot initialise the YAML parser");
  pg.initialised = true;
  yaml_parser_set_input_string(&pg.parser, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());

  Node root;
  bool have_root = false;
  int documents = 0;
  // Open collections; for maps, whether a key is pending and which keys exist.
  struct Frame {
    Node* node;
    bool have_key = false;
    std::string key;
    int key_line = 0, key_column = 0;
    std::unordered_set<std::string> keys;
  };
  std::vector<Frame> stack;

  // Places a finished or opened node into its parent; returns where it lives.
  auto attach = [&](Node&& n, const yaml_mark_t& mark) -> Result<Node*> {
    if (stack.empty()) {
      if (have_root) return InvalidArgument(Where(source, mark) + ": more than one root node");
      root = std::move(n);
      have_root = true;
      return &root;
    }
    Frame& f = stack.back();
    if (f.node->kind == Node::Kind::kSeq) {
      f.node->seq.push_back(std::move(n));
      return &f.node->seq.back();
    }
    if (!f.have_key) {
      // This node is a key.
      if (n.kind != Node::Kind::kScalar) {
        return InvalidArgument(Where(source, mark) +
                               ": a mapping key must be a plain string, not a mapping or list");
      }
      std::string key(n.text.view());
      if (key.size() > kMaxKeyBytes) {
        return InvalidArgument(Where(source, mark) + ": a key is longer than " +
                               std::to_string(kMaxKeyBytes) + " bytes");
      }
      if (!f.keys.insert(key).second) {
        return InvalidArgument(Where(source, mark) + ": duplicate key \"" + key +
                               "\" in this mapping; each key may appear once");
      }
      f.key = std::move(key);
      f.key_line = n.line;
      f.key_column = n.column;
      f.have_key = true;
      return nullptr;
    }
    Node::Entry e;
    e.key = std::move(f.key);
    e.line = f.key_line;
    e.column = f.key_column;
    e.value = std::move(n);
    f.have_key = false;
    f.node->map.push_back(std::move(e));
    return &f.node->map.back().value;
  };

  for (;;) {
    EventGuard eg;
    if (!yaml_parser_parse(&pg.parser, &eg.event)) {
      std::string msg = pg.parser.problem != nullptr ? pg.parser.problem : "malformed YAML";
      if (pg.parser.context != nullptr) {
        msg += std::string(" (") + pg.parser.context + " that starts at line " +
               std::to_string(pg.parser.context_mark.line + 1) + ", column " +
               std::to_string(pg.parser.context_mark.column + 1) + ")";
      }
      return InvalidArgument(Where(source, pg.parser.problem_mark) + ": YAML syntax error: " + msg);
    }
    eg.live = true;
    const yaml_event_t& ev = eg.event;
    const yaml_mark_t& mark = ev.start_mark;
    switch (ev.type) {
      case YAML_STREAM_START_EVENT:
      case YAML_NO_EVENT:
        break;
      case YAML_DOCUMENT_START_EVENT:
        if (++documents > 1) {
          return InvalidArgument(Where(source, mark) +
                                 ": more than one YAML document ('---'); a SOPS file here holds "
                                 "exactly one document");
        }
        break;
      case YAML_DOCUMENT_END_EVENT:
        break;
      case YAML_STREAM_END_EVENT: {
        if (!have_root) {
          Node empty;
          empty.kind = Node::Kind::kMap;
          return empty;
        }
        if (root.kind != Node::Kind::kMap) {
          // An empty document is a null scalar.
          if (root.kind == Node::Kind::kScalar && root.plain && root.text.empty()) {
            Node empty;
            empty.kind = Node::Kind::kMap;
            return empty;
          }
          return InvalidArgument(std::string(source) + ":" + std::to_string(root.line) + ":" +
                                 std::to_string(root.column) +
                                 ": the document must be a mapping (key: value) at the top level");
        }
        return Result<Node>(std::move(root));
      }
      case YAML_ALIAS_EVENT:
        return InvalidArgument(Where(source, mark) +
                               ": aliases (*name) are not supported in SOPS files; write the "
                               "value out in full");
      case YAML_SCALAR_EVENT: {
        Node n;
        n.kind = Node::Kind::kScalar;
        n.text = SecretBytes(ev.data.scalar.value, ev.data.scalar.length);
        n.plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n.str_tag = IsStrTag(ev.data.scalar.tag);
        n.line = static_cast<int>(mark.line) + 1;
        n.column = static_cast<int>(mark.column) + 1;
        ASSIGN_OR_RETURN(Node * placed, attach(std::move(n), mark));
        (void)placed;
        break;
      }
      case YAML_MAPPING_START_EVENT:
      case YAML_SEQUENCE_START_EVENT: {
        if (stack.size() >= static_cast<size_t>(kMaxDepth)) {
          return InvalidArgument(Where(source, mark) + ": nested deeper than " +
                                 std::to_string(kMaxDepth) + " levels");
        }
        Node n;
        n.kind = ev.type == YAML_MAPPING_START_EVENT ? Node::Kind::kMap : Node::Kind::kSeq;
        n.line = static_cast<int>(mark.line) + 1;
        n.column = static_cast<int>(mark.column) + 1;
        ASSIGN_OR_RETURN(Node * placed, attach(std::move(n), mark));
        if (placed == nullptr) return Internal("YAML reader: collection used as a key");
        stack.push_back(Frame{placed});
        break;
      }
      case YAML_MAPPING_END_EVENT:
      case YAML_SEQUENCE_END_EVENT:
        if (stack.empty()) return Internal("YAML reader: unbalanced collection end");
        stack.pop_back();
        break;
    }
  }
}

Value NodeToValue(Node&& node) {
  Value v;
  switch (node.kind) {
    case Node::Kind::kScalar:
      if (!node.plain || node.str_tag) {
        v.kind = Value::Kind::kString;
        v.text = std::move(node.text);
      } else if (ResolveNonString(node.text.view(), &v)) {
        node.text.Clear();
      } else {
        v.kind = Value::Kind::kString;
        v.text = std::move(node.text);
      }
      return v;
    case Node::Kind::kMap:
      v.kind = Value::Kind::kMap;
      v.map.reserve(node.map.size());
      for (auto& e : node.map) v.map.emplace_back(std::move(e.key), NodeToValue(std::move(e.value)));
      return v;
    case Node::Kind::kSeq:
      v.kind = Value::Kind::kList;
      v.list.reserve(node.seq.size());
      for (auto& n : node.seq) v.list.push_back(NodeToValue(std::move(n)));
      return v;
  }
  return v;
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

namespace {

// Length of a valid UTF-8 sequence at s[i], 0 if invalid.
size_t Utf8Len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

uint32_t CodePoint(std::string_view s, size_t i, size_t n) {
  auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(s[k])); };
  if (n == 1) return b(i);
  uint32_t cp = b(i) & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (b(i + k) & 0x3F);
  return cp;
}

// Characters YAML cannot hold unescaped, or that readers treat as breaks.
bool IsSpecialCodePoint(uint32_t cp) {
  if (cp == '\t' || cp == '\n') return false;
  if (cp < 0x20 || cp == 0x7F) return true;
  if (cp >= 0x80 && cp <= 0x9F) return true;  // C1 controls, NEL
  if (cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF) return true;
  if (cp == 0xFFFE || cp == 0xFFFF) return true;
  return false;
}

// True when every character is valid UTF-8 and printable (tab and newline
// allowed when `allow_breaks`).
bool AllPrintable(std::string_view s, bool allow_tab_and_newline) {
  for (size_t i = 0; i < s.size();) {
    size_t n = Utf8Len(s, i);
    if (n == 0) return false;
    uint32_t cp = CodePoint(s, i, n);
    if (IsSpecialCodePoint(cp)) return false;
    if ((cp == '\t' || cp == '\n') && !allow_tab_and_newline) return false;
    i += n;
  }
  return true;
}

// A string that can be written without quotes and reads back as the same
// string (`as_key`: the type it would resolve to does not matter, but null
// keys are still quoted).
bool CanBePlain(std::string_view s, bool as_key) {
  if (s.empty()) return false;
  if (!AllPrintable(s, false)) return false;
  char first = s[0];
  if (first == ' ' || s.back() == ' ') return false;
  if (std::strchr("?:,[]{}#&*!|>'\"%@`", first) != nullptr) return false;
  if (first == '-' && (s.size() == 1 || s[1] == ' ' || StartsWith(s, "---"))) return false;
  if (StartsWith(s, "...")) return false;
  if (s.find(": ") != std::string_view::npos || s.find(" #") != std::string_view::npos) return false;
  if (s.back() == ':') return false;
  if (as_key) {
    return ResolvePlainScalar(s).kind != Value::Kind::kNull && s != "<<";
  }
  return PlainReadsAsString(s);
}

// A literal block (|) keeps the text exactly.
bool CanBeLiteral(std::string_view s) {
  if (s.find('\n') == std::string_view::npos) return false;
  if (!AllPrintable(s, true)) return false;
  // The first non-empty line sets the indentation: it must not start with
  // white space. No line may end in white space (it would be ambiguous).
  size_t start = 0;
  bool seen_content = false;
  while (start <= s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string_view::npos) end = s.size();
    std::string_view line = s.substr(start, end - start);
    if (!line.empty()) {
      if (!seen_content && (line[0] == ' ' || line[0] == '\t')) return false;
      if (line.back() == ' ' || line.back() == '\t') return false;
      seen_content = true;
    }
    start = end + 1;
  }
  return seen_content;
}

void Indent(std::string& out, int n) { out.append(static_cast<size_t>(n), ' '); }

// go-yaml v3 with indent 4: a child collection goes to the next multiple of 4.
int NextIndent(int indent) { return (indent + 4) / 4 * 4; }

std::string ScalarText(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kNull:
      return "null";
    case Value::Kind::kBool:
      return v.text.view() == "True" ? "true" : "false";
    case Value::Kind::kInt: {
      std::string t(v.text.view());
      // Text from a Value built by hand could be anything: keep it an int.
      if (ResolvePlainScalar(t).kind != Value::Kind::kInt) return QuoteYamlDouble(t);
      return t;
    }
    case Value::Kind::kFloat: {
      std::string t(v.text.view());
      if (t == "NaN") return ".nan";
      if (t == "+Inf" || t == "Inf") return ".inf";
      if (t == "-Inf") return "-.inf";
      Value r = ResolvePlainScalar(t);
      if (r.kind == Value::Kind::kInt) {
        std::string f = t + ".0";
        if (ResolvePlainScalar(f).kind == Value::Kind::kFloat) return f;
      }
      if (r.kind != Value::Kind::kFloat) return QuoteYamlDouble(t);
      return t;
    }
    default:
      return {};
  }
}

void EmitValueAfterKey(const Value& v, int indent, std::string& out);
void EmitList(const Value& list, int indent, bool first_inline, std::string& out);
void EmitMap(const Value& map, int indent, bool first_inline, std::string& out);

// A string scalar after "key:" or "-" (a space is written first).
void EmitString(std::string_view s, int block_indent, std::string& out) {
  if (CanBePlain(s, false)) {
    out.push_back(' ');
    out.append(s);
    out.push_back('\n');
    return;
  }
  if (CanBeLiteral(s)) {
    size_t trailing = 0;
    while (trailing < s.size() && s[s.size() - 1 - trailing] == '\n') ++trailing;
    out += trailing == 0 ? " |-\n" : trailing == 1 ? " |\n" : " |+\n";
    std::string_view body = s.substr(0, s.size() - trailing);
    size_t start = 0;
    for (;;) {
      size_t end = body.find('\n', start);
      std::string_view line = body.substr(start, end == std::string_view::npos ? end : end - start);
      if (!line.empty()) Indent(out, block_indent);
      out.append(line);
      out.push_back('\n');
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
    for (size_t i = 1; i < trailing; ++i) out.push_back('\n');
    return;
  }
  out.push_back(' ');
  out += QuoteYamlDouble(s);
  out.push_back('\n');
}

void EmitKey(std::string_view key, std::string& out, bool* explicit_key) {
  std::string k = CanBePlain(key, true) ? std::string(key) : QuoteYamlDouble(key);
  // An implicit key is at most 1024 characters: longer ones use "? key".
  *explicit_key = k.size() > 1000;
  if (*explicit_key) {
    out += "? ";
    out += k;
    out.push_back('\n');
  } else {
    out += k;
  }
}

void EmitValueAfterKey(const Value& v, int indent, std::string& out) {
  switch (v.kind) {
    case Value::Kind::kMap:
      if (v.map.empty()) {
        out += " {}\n";
      } else {
        out.push_back('\n');
        EmitMap(v, NextIndent(indent), false, out);
      }
      return;
    case Value::Kind::kList:
      if (v.list.empty()) {
        out += " []\n";
      } else {
        out.push_back('\n');
        EmitList(v, NextIndent(indent), false, out);
      }
      return;
    case Value::Kind::kString:
      EmitString(v.text.view(), NextIndent(indent), out);
      return;
    default:
      out.push_back(' ');
      out += ScalarText(v);
      out.push_back('\n');
      return;
  }
}

void EmitMap(const Value& map, int indent, bool first_inline, std::string& out) {
  bool first = true;
  for (const auto& [key, value] : map.map) {
    if (!(first && first_inline)) Indent(out, indent);
    first = false;
    bool explicit_key = false;
    EmitKey(key, out, &explicit_key);
    if (explicit_key) Indent(out, indent);
    out.push_back(':');
    EmitValueAfterKey(value, indent, out);
  }
}

void EmitList(const Value& list, int indent, bool first_inline, std::string& out) {
  bool first = true;
  for (const Value& item : list.list) {
    if (!(first && first_inline)) Indent(out, indent);
    first = false;
    out.push_back('-');
    switch (item.kind) {
      case Value::Kind::kMap:
        if (item.map.empty()) {
          out += " {}\n";
        } else {
          out.push_back(' ');
          EmitMap(item, indent + 2, true, out);
        }
        break;
      case Value::Kind::kList:
        if (item.list.empty()) {
          out += " []\n";
        } else {
          out.push_back(' ');
          EmitList(item, indent + 2, true, out);
        }
        break;
      case Value::Kind::kString:
        EmitString(item.text.view(), NextIndent(indent), out);
        break;
      default:
        out.push_back(' ');
        out += ScalarText(item);
        out.push_back('\n');
        break;
    }
  }
}

}  // namespace

std::string QuoteYamlDouble(std::string_view s) {
  std::string out = "\"";
  static const char kHex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < s.size();) {
    size_t n = Utf8Len(s, i);
    if (n == 0) {
      // Not UTF-8: YAML cannot hold raw bytes; write the byte's code point.
      unsigned char c = static_cast<unsigned char>(s[i]);
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
      ++i;
      continue;
    }
    uint32_t cp = CodePoint(s, i, n);
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case 0:
        out += "\\0";
        break;
      case 0x85:
        out += "\\N";
        break;
      case 0x2028:
        out += "\\L";
        break;
      case 0x2029:
        out += "\\P";
        break;
      default:
        if (IsSpecialCodePoint(cp)) {
          if (cp <= 0xFF) {
            out += "\\x";
            out.push_back(kHex[cp >> 4]);
            out.push_back(kHex[cp & 15]);
          } else {
            out += "\\u";
            for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kHex[(cp >> shift) & 15]);
          }
        } else {
          out.append(s.substr(i, n));
        }
    }
    i += n;
  }
  out.push_back('"');
  return out;
}

void EmitYamlMapEntries(const Value& map, int indent, std::string& out) {
  EmitMap(map, indent, false, out);
}

std::string EmitYaml(const Value& v) {
  std::string out;
  switch (v.kind) {
    case Value::Kind::kMap:
      if (v.map.empty()) return "{}\n";
      EmitMap(v, 0, false, out);
      return out;
    case Value::Kind::kList:
      if (v.list.empty()) return "[]\n";
      EmitList(v, 0, false, out);
      return out;
    case Value::Kind::kString: {
      std::string s;
      EmitString(v.text.view(), 2, s);
      return s.substr(1);  // no leading space at the document level
    }
    default:
      return ScalarText(v) + "\n";
  }
}

}  // namespace hearth::sops::internal
