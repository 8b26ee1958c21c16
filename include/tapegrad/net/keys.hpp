// The key=value options of a spec line, declared once per layer kind (net/layer_table.hpp) and
// parsed by one function for every kind:
//
//   conv2d out=6 kernel=5 pad=2          ->  Keys{out=6 kernel=(5,5) stride=(1,1) pad=(2,2) ...}
//
// A KeySpec names a key, its type and its default (spec text, parsed like a value the user
// wrote); a key with no default is required unless `default_from` names another key whose value
// it copies (a pool's stride defaults to its kernel). Unknown keys, keys given twice, malformed
// values and missing required keys are errors that name the key and the line.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tapegrad/kernels/geometry.hpp"
#include "tapegrad/shape.hpp"

namespace tapegrad {

enum class KeyType {
  integer,  // 6
  pair,     // 3 (both axes) or 2,3 (height, width)
  boolean,  // true false 1 0
};

struct KeySpec {
  std::string_view name;
  KeyType type;
  std::string_view default_value;  // spec text; empty: required (or default_from)
  std::string_view doc;
  std::string_view default_from = {};  // key whose value is the default
};

// The resolved options of one layer line: every key of the kind's KeySpec list, each given or
// defaulted. Lookups of a key the kind did not declare are programming errors (std::logic_error).
class Keys {
 public:
  struct Value {
    std::string name;
    KeyType type = KeyType::integer;
    Pair v{0, 0};        // integer: v[0]; pair: (v[0], v[1]); boolean: v[0] in {0, 1}
    bool given = false;  // written on the spec line (not a default)
  };

  index_t integer(std::string_view key) const { return find(key, KeyType::integer).v[0]; }
  Pair pair(std::string_view key) const { return find(key, KeyType::pair).v; }
  bool boolean(std::string_view key) const { return find(key, KeyType::boolean).v[0] != 0; }
  bool given(std::string_view key) const;
  const std::vector<Value>& values() const { return values_; }

  // "out=6 kernel=5,5 stride=1,1 ...": every key, in declaration order (the canonical line).
  std::string str() const;

  // Parses `tokens` (the words after the layer name) against `spec`; errors are
  // std::invalid_argument "<layer>: ..." (the caller adds the line).
  static Keys parse(std::span<const KeySpec> spec, std::string_view layer,
                    std::span<const std::string> tokens);

 private:
  const Value& find(std::string_view key, KeyType type) const;
  std::vector<Value> values_;
};

// Parses a signed 64-bit decimal integer, the whole string; nullopt-like failure as false.
bool parse_index(std::string_view text, index_t& out);

}  // namespace tapegrad
