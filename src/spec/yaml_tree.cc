#include "spec/yaml_tree.h"

#include <yaml.h>

#include <map>

namespace hearth::spec::internal {

const std::string& Node::Scalar() const {
  static const std::string kEmpty;
  return data_ && data_->type == Type::kScalar ? data_->scalar : kEmpty;
}

size_t Node::size() const {
  if (!data_) return 0;
  if (data_->type == Type::kSequence) return data_->items.size();
  if (data_->type == Type::kMap) return data_->pairs.size();
  return 0;
}

Node Node::operator[](size_t i) const {
  if (!data_ || data_->type != Type::kSequence || i >= data_->items.size()) return Node();
  return data_->items[i];
}

std::vector<Node::Pair>::const_iterator Node::begin() const {
  static const std::vector<Pair> kNone;
  return data_ && data_->type == Type::kMap ? data_->pairs.begin() : kNone.begin();
}

std::vector<Node::Pair>::const_iterator Node::end() const {
  static const std::vector<Pair> kNone;
  return data_ && data_->type == Type::kMap ? data_->pairs.end() : kNone.end();
}

namespace {

YamlMark ToMark(const yaml_mark_t& m) {
  return YamlMark{static_cast<int>(m.line), static_cast<int>(m.column)};
}

bool IsPlainNull(const std::string& s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

}  // namespace

// Turns libyaml events into a tree with an explicit stack.
class TreeBuilder {
 public:
  explicit TreeBuilder(int max_depth) : max_depth_(max_depth) {}

  ParsedYaml Run(std::string_view text) {
    ParsedYaml out;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
      out.errors.push_back({{}, "cannot initialise the YAML parser (out of memory)"});
      return out;
    }
    yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()),
                                 text.size());
    int documents = 0;
    bool done = false;
    while (!done) {
      yaml_event_t event;
      if (!yaml_parser_parse(&parser, &event)) {
        std::string msg = parser.problem ? parser.problem : "malformed YAML";
        if (parser.context) {
          // e.g. "while parsing a flow sequence" + where that sequence began,
          // which is usually where the mistake (an unclosed bracket) is.
          msg += " (" + std::string(parser.context) + " that starts at line " +
                 std::to_string(parser.context_mark.line + 1) + ", column " +
                 std::to_string(parser.context_mark.column + 1) + ")";
        }
        out.errors.push_back({ToMark(parser.problem_mark), "YAML syntax error: " + msg});
        break;
      }
      std::string error;
      switch (event.type) {
        case YAML_DOCUMENT_START_EVENT:
          if (++documents > 1) {
            out.errors.push_back({ToMark(event.start_mark),
                                  "a second YAML document starts here; put one document in each "
                                  "file (a lab may be a directory of files)"});
            done = true;
          }
          break;
        case YAML_SCALAR_EVENT: {
          auto d = std::make_shared<Node::Data>();
          d->mark = ToMark(event.start_mark);
          d->scalar.assign(reinterpret_cast<const char*>(event.data.scalar.value),
                           event.data.scalar.length);
          d->quoted = event.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
          d->type = !d->quoted && IsPlainNull(d->scalar) ? Node::Type::kNull : Node::Type::kScalar;
          Anchor(event.data.scalar.anchor, d);
          Add(Node(d), error);
          break;
        }
        case YAML_ALIAS_EVENT: {
          std::string name = reinterpret_cast<const char*>(event.data.alias.anchor);
          auto it = anchors_.find(name);
          if (it == anchors_.end()) {
            error = "unknown alias *" + name + "; define &" + name + " before using it";
          } else {
            Add(Node(it->second), error);
          }
          break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
          if (static_cast<int>(stack_.size()) >= max_depth_) {
            error = "nesting is deeper than " + std::to_string(max_depth_) +
                    " levels; a lab spec never needs that, so the file is not read";
            break;
          }
          auto d = std::make_shared<Node::Data>();
          d->mark = ToMark(event.start_mark);
          d->type = event.type == YAML_SEQUENCE_START_EVENT ? Node::Type::kSequence
                                                            : Node::Type::kMap;
          Anchor(event.type == YAML_SEQUENCE_START_EVENT ? event.data.sequence_start.anchor
                                                         : event.data.mapping_start.anchor,
                 d);
          Node n(d);
          Add(n, error);
          stack_.push_back({d, false, Node()});
          break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
          if (!stack_.empty()) stack_.pop_back();
          break;
        case YAML_STREAM_END_EVENT:
          done = true;
          break;
        default:
          break;
      }
      yaml_event_delete(&event);
      if (!error.empty()) {
        out.errors.push_back({ToMark(parser.mark), error});
        break;
      }
    }
    yaml_parser_delete(&parser);
    out.root = root_;
    // Break alias cycles (an anchor used inside itself) so shared_ptrs free.
    stack_.clear();
    return out;
  }

 private:
  struct Frame {
    std::shared_ptr<Node::Data> data;
    bool have_key;  // maps: a key is waiting for its value
    Node key;
  };

  void Anchor(const yaml_char_t* anchor, const std::shared_ptr<Node::Data>& d) {
    if (anchor) anchors_[reinterpret_cast<const char*>(anchor)] = d;
  }

  void Add(const Node& n, std::string& error) {
    if (stack_.empty()) {
      root_ = n;
      return;
    }
    for (const Frame& f : stack_) {
      if (n.data_ == f.data) {
        error = "an alias refers to a collection that contains it; a spec cannot be recursive";
        return;
      }
    }
    Frame& top = stack_.back();
    if (top.data->type == Node::Type::kSequence) {
      top.data->items.push_back(n);
    } else if (!top.have_key) {
      top.key = n;
      top.have_key = true;
    } else {
      top.data->pairs.emplace_back(top.key, n);
      top.have_key = false;
      top.key = Node();
    }
  }

  int max_depth_;
  std::vector<Frame> stack_;
  std::map<std::string, std::shared_ptr<Node::Data>> anchors_;
  Node root_;
};

ParsedYaml ParseYaml(std::string_view text, int max_depth) {
  return TreeBuilder(max_depth).Run(text);
}

}  // namespace hearth::spec::internal
