// Private to the spec module: a small read-only YAML tree built with libyaml.
//
// Why not yaml-cpp: on a 1,000-service lab its parser alone took longer than
// the whole plan budget, its LoadAll can loop forever on some malformed input,
// and it parses recursively (deep input can exhaust the stack). libyaml is an
// event parser with explicit stacks; this file builds the tree iteratively,
// caps nesting depth, and keeps the 1-based line:column of every node.
//
// Aliases point at the anchored node (shared, never copied), so "billion
// laughs" input costs nothing. Merge keys ("<<") are not expanded.
#ifndef HEARTH_SPEC_YAML_TREE_H_
#define HEARTH_SPEC_YAML_TREE_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hearth::spec::internal {

struct YamlMark {
  int line = -1;  // 0-based, -1 = unknown
  int column = -1;
  bool is_null() const { return line < 0; }
};

class Node {
 public:
  enum class Type { kUndefined, kNull, kScalar, kSequence, kMap };
  using Pair = std::pair<Node, Node>;

  Node() = default;  // undefined

  bool IsDefined() const { return data_ != nullptr; }
  bool IsNull() const { return data_ && data_->type == Type::kNull; }
  bool IsScalar() const { return data_ && data_->type == Type::kScalar; }
  bool IsSequence() const { return data_ && data_->type == Type::kSequence; }
  bool IsMap() const { return data_ && data_->type == Type::kMap; }
  // The scalar text ("" for non-scalars).
  const std::string& Scalar() const;
  bool Quoted() const { return data_ && data_->quoted; }
  YamlMark Mark() const { return data_ ? data_->mark : YamlMark{}; }

  // Sequences: element count and access (undefined node when out of range).
  // Maps: size() is the number of pairs.
  size_t size() const;
  Node operator[](size_t i) const;
  // Maps: key/value pairs in document order, duplicates included.
  std::vector<Pair>::const_iterator begin() const;
  std::vector<Pair>::const_iterator end() const;

 private:
  friend class TreeBuilder;
  struct Data {
    Type type = Type::kNull;
    std::string scalar;
    bool quoted = false;
    YamlMark mark;
    std::vector<Node> items;
    std::vector<Pair> pairs;
  };
  explicit Node(std::shared_ptr<Data> d) : data_(std::move(d)) {}
  std::shared_ptr<Data> data_;
};

struct YamlError {
  YamlMark mark;
  std::string message;
};

struct ParsedYaml {
  Node root;                  // undefined for an empty document
  std::vector<YamlError> errors;  // at most one: parsing stops at the first
  bool ok() const { return errors.empty(); }
};

// Parses exactly one YAML document. A second document, nesting deeper than
// max_depth, and syntax errors are reported in errors, with their position.
ParsedYaml ParseYaml(std::string_view text, int max_depth);

}  // namespace hearth::spec::internal

#endif  // HEARTH_SPEC_YAML_TREE_H_
