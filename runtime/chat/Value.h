// Value.h - the values of the chat-template interpreter, with Python's
// semantics where templates can tell (truthiness, str(), repr(), ==, json).
//
// Strings carry an optional per-byte tag: the index of the message whose
// content the byte came from (-1: template markup). Slicing, strip, split,
// concatenation and output keep the tags, so a rendering knows which of its
// bytes are an assistant's content (runtime/chat/ChatTemplate.h).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tessera::chat {

// A template error: message and the template line (0: unknown).
struct TemplateError : std::runtime_error {
  TemplateError(const std::string &what, int line) : std::runtime_error(what), line(line) {}
  int line;
};

struct TaggedString {
  std::string text;
  std::vector<int32_t> tags; // empty: every byte is -1; else one per byte

  TaggedString() = default;
  TaggedString(std::string s) : text(std::move(s)) {}
  TaggedString(std::string s, int32_t tag) : text(std::move(s)) {
    if (tag >= 0) tags.assign(text.size(), tag);
  }
  int32_t tag(size_t i) const { return tags.empty() ? -1 : tags[i]; }
  void append(const TaggedString &o);
  void append(const std::string &s) { append(TaggedString(s)); }
  // Bytes [b, e) with their tags.
  TaggedString substr(size_t b, size_t e) const;
};

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>; // insertion order, as Python's dict

struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> named;
};
using Function = std::function<Value(Args &, int line)>;

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Function };
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::shared_ptr<TaggedString> s;
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;
  std::shared_ptr<Function> fn;
  bool isNamespace = false; // namespace(): the one mutable object templates have
  std::string undefinedName; // for "'x' is undefined"

  static Value undefined(std::string name = "") {
    Value v;
    v.undefinedName = std::move(name);
    return v;
  }
  static Value none() { return make(Kind::None); }
  static Value boolean(bool x) {
    Value v = make(Kind::Bool);
    v.b = x;
    return v;
  }
  static Value integer(int64_t x) {
    Value v = make(Kind::Int);
    v.i = x;
    return v;
  }
  static Value number(double x) {
    Value v = make(Kind::Float);
    v.f = x;
    return v;
  }
  static Value string(TaggedString x) {
    Value v = make(Kind::String);
    v.s = std::make_shared<TaggedString>(std::move(x));
    return v;
  }
  static Value string(std::string x) { return string(TaggedString(std::move(x))); }
  static Value makeList(List x = {}) {
    Value v = make(Kind::List);
    v.list = std::make_shared<List>(std::move(x));
    return v;
  }
  static Value makeDict(Dict x = {}) {
    Value v = make(Kind::Dict);
    v.dict = std::make_shared<Dict>(std::move(x));
    return v;
  }
  static Value function(Function f) {
    Value v = make(Kind::Function);
    v.fn = std::make_shared<Function>(std::move(f));
    return v;
  }
  // JSON (in its key order) to a value.
  static Value fromJson(const nlohmann::ordered_json &j);

  bool isUndefined() const { return kind == Kind::Undefined; }
  bool isNone() const { return kind == Kind::None; }
  bool isString() const { return kind == Kind::String; }
  bool isNumber() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool isList() const { return kind == Kind::List; }
  bool isDict() const { return kind == Kind::Dict; }
  double asDouble() const { return kind == Kind::Float ? f : kind == Kind::Bool ? double(b) : double(i); }
  const std::string &str() const { return s->text; }

  // Python's bool(x).
  bool truthy() const;
  // Python's str(x) (undefined: ""), with tags for strings.
  TaggedString toText() const;
  // Python's repr(x).
  std::string repr() const;
  // json.dumps(x, ensure_ascii=False, indent=indent) (indent < 0: None).
  std::string toJson(int indent = -1, int depth = 0) const;
  // Dict lookup (nullptr when absent).
  const Value *find(const std::string &key) const;
  // The type's name as Python says it, for errors.
  std::string typeName() const;

private:
  static Value make(Kind k) {
    Value v;
    v.kind = k;
    return v;
  }
};

bool operator==(const Value &a, const Value &b);

// Python's repr of a float ("1.0", "1e-05", "0.1").
std::string pythonFloat(double x);

} // namespace tessera::chat
