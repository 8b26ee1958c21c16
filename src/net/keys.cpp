// Spec-line options: see include/tapegrad/net/keys.hpp.
#include "tapegrad/net/keys.hpp"

#include <charconv>
#include <stdexcept>

#include "tapegrad/errors.hpp"

namespace tapegrad {

bool parse_index(std::string_view text, index_t& out) {
  if (text.empty()) return false;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(first, last, out);
  return ec == std::errc() && ptr == last;
}

namespace {

// One value of `type` from spec text; false when malformed.
bool parse_value(KeyType type, std::string_view text, Pair& v) {
  switch (type) {
    case KeyType::integer: return parse_index(text, v[0]);
    case KeyType::boolean:
      if (text == "true" || text == "1") return (v[0] = 1), true;
      if (text == "false" || text == "0") return (v[0] = 0), true;
      return false;
    case KeyType::pair: {
      const auto comma = text.find(',');
      if (comma == std::string_view::npos) {
        if (!parse_index(text, v[0])) return false;
        v[1] = v[0];
        return true;
      }
      return parse_index(text.substr(0, comma), v[0]) && parse_index(text.substr(comma + 1), v[1]);
    }
  }
  return false;
}

const char* expected_form(KeyType type) {
  switch (type) {
    case KeyType::integer: return "an integer";
    case KeyType::boolean: return "true or false";
    case KeyType::pair: return "N or H,W with integers";
  }
  return "?";
}

}  // namespace

Keys Keys::parse(std::span<const KeySpec> spec, std::string_view layer,
                 std::span<const std::string> tokens) {
  Keys keys;
  for (const KeySpec& ks : spec) keys.values_.push_back({std::string(ks.name), ks.type, {0, 0}, false});
  for (const std::string& tok : tokens) {
    const auto eq = tok.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == tok.size())
      fail_arg(layer, "expected key=value, got '", tok, "'");
    const std::string_view key = std::string_view(tok).substr(0, eq);
    const std::string_view text = std::string_view(tok).substr(eq + 1);
    std::size_t i = 0;
    while (i < spec.size() && spec[i].name != key) ++i;
    if (i == spec.size()) fail_arg(layer, "unknown option '", key, "'");
    Value& v = keys.values_[i];
    if (v.given) fail_arg(layer, "option '", key, "' given twice");
    if (!parse_value(v.type, text, v.v))
      fail_arg(layer, key, " must be ", expected_form(v.type), ", got '", text, "'");
    v.given = true;
  }
  // Defaults: plain ones first, then those copied from another key.
  for (std::size_t i = 0; i < spec.size(); ++i) {
    Value& v = keys.values_[i];
    if (v.given || spec[i].default_value.empty()) continue;
    if (!parse_value(v.type, spec[i].default_value, v.v))
      throw std::logic_error("layer table: bad default for " + v.name);
  }
  for (std::size_t i = 0; i < spec.size(); ++i) {
    Value& v = keys.values_[i];
    if (v.given || !spec[i].default_value.empty()) continue;
    if (spec[i].default_from.empty()) fail_arg(layer, "missing ", v.name, "=");
    v.v = keys.find(spec[i].default_from, v.type).v;
  }
  return keys;
}

bool Keys::given(std::string_view key) const {
  for (const Value& v : values_)
    if (v.name == key) return v.given;
  throw std::logic_error("Keys: no key '" + std::string(key) + "'");
}

const Keys::Value& Keys::find(std::string_view key, KeyType type) const {
  for (const Value& v : values_)
    if (v.name == key) {
      if (v.type != type) throw std::logic_error("Keys: '" + v.name + "' read as another type");
      return v;
    }
  throw std::logic_error("Keys: no key '" + std::string(key) + "'");
}

std::string Keys::str() const {
  std::string s;
  for (const Value& v : values_) {
    if (!s.empty()) s += ' ';
    s += v.name;
    s += '=';
    switch (v.type) {
      case KeyType::integer: s += std::to_string(v.v[0]); break;
      case KeyType::boolean: s += v.v[0] ? "true" : "false"; break;
      case KeyType::pair:
        s += std::to_string(v.v[0]);
        s += ',';
        s += std::to_string(v.v[1]);
        break;
    }
  }
  return s;
}

}  // namespace tapegrad
