#include "runtime/chat/Value.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace tessera::chat {

void TaggedString::append(const TaggedString &o) {
  if (tags.empty() && o.tags.empty()) {
    text += o.text;
    return;
  }
  if (tags.empty()) tags.assign(text.size(), -1);
  text += o.text;
  if (o.tags.empty()) tags.insert(tags.end(), o.text.size(), -1);
  else tags.insert(tags.end(), o.tags.begin(), o.tags.end());
}

TaggedString TaggedString::substr(size_t b, size_t e) const {
  TaggedString t;
  t.text = text.substr(b, e - b);
  if (!tags.empty()) t.tags.assign(tags.begin() + long(b), tags.begin() + long(e));
  return t;
}

Value Value::fromJson(const nlohmann::ordered_json &j) {
  switch (j.type()) {
  case nlohmann::ordered_json::value_t::null: return none();
  case nlohmann::ordered_json::value_t::boolean: return boolean(j.get<bool>());
  case nlohmann::ordered_json::value_t::number_integer:
  case nlohmann::ordered_json::value_t::number_unsigned: return integer(j.get<int64_t>());
  case nlohmann::ordered_json::value_t::number_float: return number(j.get<double>());
  case nlohmann::ordered_json::value_t::string: return string(j.get<std::string>());
  case nlohmann::ordered_json::value_t::array: {
    List l;
    for (const auto &e : j) l.push_back(fromJson(e));
    return makeList(std::move(l));
  }
  case nlohmann::ordered_json::value_t::object: {
    Dict d;
    for (auto it = j.begin(); it != j.end(); ++it) d.emplace_back(it.key(), fromJson(it.value()));
    return makeDict(std::move(d));
  }
  default: return undefined();
  }
}

bool Value::truthy() const {
  switch (kind) {
  case Kind::Undefined:
  case Kind::None: return false;
  case Kind::Bool: return b;
  case Kind::Int: return i != 0;
  case Kind::Float: return f != 0;
  case Kind::String: return !s->text.empty();
  case Kind::List: return !list->empty();
  case Kind::Dict: return isNamespace || !dict->empty();
  case Kind::Function: return true;
  }
  return false;
}

std::string pythonFloat(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof(buf), "%.*g", digits, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  std::string s = buf;
  // Python switches to exponent form below 1e-4 and from 1e16; %g from 1e(digits).
  double ax = std::fabs(x);
  size_t e = s.find('e');
  if (ax != 0 && ax < 1e16 && ax >= 1e-4 && e != std::string::npos) {
    std::snprintf(buf, sizeof(buf), "%.17f", x);
    s = buf;
    // Trim to the shortest that still reads back.
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    while (true) {
      std::string shorter = s.substr(0, s.size() - 1);
      if (s.back() == '.' || std::strtod(shorter.c_str(), nullptr) != x) break;
      s = shorter;
    }
    if (s.back() == '.') s += '0';
    return s;
  }
  if (e != std::string::npos) {
    // "1e-05": sign and at least two exponent digits, as Python writes them.
    std::string mant = s.substr(0, e), ex = s.substr(e + 1);
    char sign = '+';
    if (!ex.empty() && (ex[0] == '-' || ex[0] == '+')) {
      sign = ex[0];
      ex = ex.substr(1);
    }
    while (ex.size() > 2 && ex[0] == '0') ex = ex.substr(1);
    if (ex.size() < 2) ex = "0" + ex;
    return mant + "e" + sign + ex;
  }
  if (s.find('.') == std::string::npos) s += ".0";
  return s;
}

namespace {

std::string pythonStringRepr(const std::string &s) {
  bool single = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  char q = single ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == char(q)) out += std::string("\\") + char(q);
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7F) {
      char b[8];
      std::snprintf(b, sizeof(b), "\\x%02x", c);
      out += b;
    } else out += char(c);
  }
  return out + q;
}

std::string jsonString(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      if (c < 0x20 || c == 0x7F) {
        char b[8];
        std::snprintf(b, sizeof(b), "\\u%04x", c);
        out += b;
      } else out += char(c);
    }
  }
  return out + "\"";
}

} // namespace

TaggedString Value::toText() const {
  switch (kind) {
  case Kind::Undefined: return TaggedString();
  case Kind::String: return *s;
  default: return TaggedString(repr());
  }
}

std::string Value::repr() const {
  switch (kind) {
  case Kind::Undefined: return "";
  case Kind::None: return "None";
  case Kind::Bool: return b ? "True" : "False";
  case Kind::Int: return std::to_string(i);
  case Kind::Float: return pythonFloat(f);
  case Kind::String: return pythonStringRepr(s->text);
  case Kind::List: {
    std::string out = "[";
    for (size_t k = 0; k < list->size(); ++k) out += (k ? ", " : "") + (*list)[k].repr();
    return out + "]";
  }
  case Kind::Dict: {
    if (isNamespace) return "<Namespace>";
    std::string out = "{";
    for (size_t k = 0; k < dict->size(); ++k)
      out += (k ? ", " : "") + pythonStringRepr((*dict)[k].first) + ": " + (*dict)[k].second.repr();
    return out + "}";
  }
  case Kind::Function: return "<function>";
  }
  return "";
}

std::string Value::toJson(int indent, int depth) const {
  auto newline = [&](int d) { return indent < 0 ? std::string() : "\n" + std::string(size_t(indent * d), ' '); };
  std::string itemSep = indent < 0 ? ", " : ",";
  switch (kind) {
  case Kind::Undefined:
  case Kind::None: return "null";
  case Kind::Bool: return b ? "true" : "false";
  case Kind::Int: return std::to_string(i);
  case Kind::Float:
    if (std::isnan(f)) return "NaN";
    if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
    return pythonFloat(f);
  case Kind::String: return jsonString(s->text);
  case Kind::List: {
    if (list->empty()) return "[]";
    std::string out = "[";
    for (size_t k = 0; k < list->size(); ++k)
      out += (k ? itemSep : "") + newline(depth + 1) + (*list)[k].toJson(indent, depth + 1);
    return out + newline(depth) + "]";
  }
  case Kind::Dict: {
    if (dict->empty()) return "{}";
    std::string out = "{";
    for (size_t k = 0; k < dict->size(); ++k)
      out += (k ? itemSep : "") + newline(depth + 1) + jsonString((*dict)[k].first) + ": " +
             (*dict)[k].second.toJson(indent, depth + 1);
    return out + newline(depth) + "}";
  }
  case Kind::Function: return "null";
  }
  return "null";
}

const Value *Value::find(const std::string &key) const {
  if (kind != Kind::Dict) return nullptr;
  for (const auto &[k, v] : *dict)
    if (k == key) return &v;
  return nullptr;
}

std::string Value::typeName() const {
  switch (kind) {
  case Kind::Undefined: return "undefined";
  case Kind::None: return "NoneType";
  case Kind::Bool: return "bool";
  case Kind::Int: return "int";
  case Kind::Float: return "float";
  case Kind::String: return "str";
  case Kind::List: return "list";
  case Kind::Dict: return isNamespace ? "Namespace" : "dict";
  case Kind::Function: return "function";
  }
  return "?";
}

bool operator==(const Value &a, const Value &b) {
  if (a.isNumber() && b.isNumber()) return a.asDouble() == b.asDouble();
  if (a.kind != b.kind) return false;
  switch (a.kind) {
  case Value::Kind::Undefined:
  case Value::Kind::None: return true;
  case Value::Kind::String: return a.s->text == b.s->text;
  case Value::Kind::List:
    if (a.list->size() != b.list->size()) return false;
    for (size_t k = 0; k < a.list->size(); ++k)
      if (!((*a.list)[k] == (*b.list)[k])) return false;
    return true;
  case Value::Kind::Dict:
    if (a.dict->size() != b.dict->size()) return false;
    for (const auto &[k, v] : *a.dict) {
      const Value *o = b.find(k);
      if (!o || !(v == *o)) return false;
    }
    return true;
  default: return a.fn == b.fn;
  }
}

} // namespace tessera::chat
