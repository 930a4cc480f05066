#include "runtime/chat/Builtins.h"

#include "runtime/tokenizer/Utf8.h"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <ctime>

namespace tessera::chat {

namespace {

using text::decodeUtf8;

[[noreturn]] void fail(const std::string &what, int line) { throw TemplateError(what, line); }

// Byte offsets of each code point (plus the end).
std::vector<size_t> codePoints(const std::string &s) {
  std::vector<size_t> b;
  size_t i = 0;
  while (i < s.size()) {
    b.push_back(i);
    decodeUtf8(s, i);
  }
  b.push_back(s.size());
  return b;
}

const Value &arg(Args &a, size_t i, const char *name, const Value &fallback) {
  if (i < a.positional.size()) return a.positional[i];
  for (const auto &[k, v] : a.named)
    if (k == name) return v;
  return fallback;
}

TaggedString textOf(const Value &v) { return v.toText(); }

bool inChars(char32_t c, const std::string *chars) {
  if (!chars) return isPythonSpace(c);
  size_t i = 0;
  while (i < chars->size())
    if (decodeUtf8(*chars, i) == c) return true;
  return false;
}

TaggedString strip(const TaggedString &s, bool left, bool right, const std::string *chars) {
  std::vector<size_t> cp = codePoints(s.text);
  size_t b = 0, e = cp.size() - 1;
  auto at = [&](size_t k) {
    size_t i = cp[k];
    return decodeUtf8(s.text, i);
  };
  if (left)
    while (b < e && inChars(at(b), chars)) ++b;
  if (right)
    while (e > b && inChars(at(e - 1), chars)) --e;
  return s.substr(cp[b], cp[e]);
}

Value makeStr(TaggedString s) { return Value::string(std::move(s)); }

Value split(const TaggedString &s, const Value &sepV, int64_t maxsplit, int line) {
  List out;
  if (sepV.isNone() || sepV.isUndefined()) { // runs of whitespace, no empty strings
    std::vector<size_t> cp = codePoints(s.text);
    size_t k = 0, n = cp.size() - 1;
    int64_t splits = 0;
    auto space = [&](size_t j) {
      size_t i = cp[j];
      return isPythonSpace(decodeUtf8(s.text, i));
    };
    while (k < n) {
      while (k < n && space(k)) ++k;
      if (k >= n) break;
      if (maxsplit >= 0 && splits >= maxsplit) {
        size_t e = n;
        while (e > k && space(e - 1)) --e;
        out.push_back(makeStr(s.substr(cp[k], cp[e])));
        break;
      }
      size_t j = k;
      while (j < n && !space(j)) ++j;
      out.push_back(makeStr(s.substr(cp[k], cp[j])));
      ++splits;
      k = j;
    }
    return Value::makeList(std::move(out));
  }
  if (!sepV.isString()) fail("split() separator must be a string", line);
  const std::string &sep = sepV.str();
  if (sep.empty()) fail("split(): empty separator", line);
  size_t last = 0;
  int64_t splits = 0;
  for (size_t p = s.text.find(sep); p != std::string::npos && (maxsplit < 0 || splits < maxsplit);
       p = s.text.find(sep, last)) {
    out.push_back(makeStr(s.substr(last, p)));
    last = p + sep.size();
    ++splits;
  }
  out.push_back(makeStr(s.substr(last, s.text.size())));
  return Value::makeList(std::move(out));
}

TaggedString mapCase(const TaggedString &s, int mode) { // 0 lower, 1 upper, 2 title, 3 capitalize
  TaggedString out;
  size_t i = 0;
  bool prevCased = false, first = true;
  while (i < s.text.size()) {
    size_t b = i;
    char32_t c = decodeUtf8(s.text, i);
    char32_t m = c;
    bool upper = mode == 1 || (mode == 2 && !prevCased) || (mode == 3 && first);
    m = upper ? char32_t(utf8proc_toupper(utf8proc_int32_t(c))) : char32_t(utf8proc_tolower(utf8proc_int32_t(c)));
    utf8proc_category_t cat = utf8proc_category(utf8proc_int32_t(c));
    prevCased = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
    first = false;
    std::string enc;
    text::appendUtf8(enc, m);
    out.append(TaggedString(enc, s.tag(b)));
  }
  return out;
}

TaggedString replace(const TaggedString &s, const std::string &from, const TaggedString &to, int64_t count) {
  TaggedString out;
  if (from.empty()) return s;
  size_t last = 0;
  int64_t n = 0;
  for (size_t p = s.text.find(from); p != std::string::npos && (count < 0 || n < count); p = s.text.find(from, last)) {
    out.append(s.substr(last, p));
    out.append(to);
    last = p + from.size();
    ++n;
  }
  out.append(s.substr(last, s.text.size()));
  return out;
}

int64_t lengthOf(const Value &v, int line) {
  switch (v.kind) {
  case Value::Kind::Undefined: return 0;
  case Value::Kind::String: return int64_t(text::codePointCount(v.str()));
  case Value::Kind::List: return int64_t(v.list->size());
  case Value::Kind::Dict: return int64_t(v.dict->size());
  default: fail("object of type '" + v.typeName() + "' has no len()", line);
  }
}

bool lessThan(const Value &a, const Value &b, int line) {
  if (a.isNumber() && b.isNumber()) return a.asDouble() < b.asDouble();
  if (a.isString() && b.isString()) return a.str() < b.str();
  fail("'<' not supported between '" + a.typeName() + "' and '" + b.typeName() + "'", line);
}

} // namespace

List iterate(const Value &v, int line) {
  switch (v.kind) {
  case Value::Kind::Undefined: return {};
  case Value::Kind::List: return *v.list;
  case Value::Kind::Dict: {
    List keys;
    for (const auto &kv : *v.dict) keys.push_back(Value::string(kv.first));
    return keys;
  }
  case Value::Kind::String: {
    List chars;
    std::vector<size_t> cp = codePoints(v.str());
    for (size_t k = 0; k + 1 < cp.size(); ++k) chars.push_back(makeStr(v.s->substr(cp[k], cp[k + 1])));
    return chars;
  }
  default: fail("'" + v.typeName() + "' object is not iterable", line);
  }
}

bool isPythonSpace(char32_t c) {
  return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

Value applyFilter(const std::string &name, const Value &v, Args &a, int line, const AttrLookup &attr) {
  static const Value none = Value::none(), undef = Value::undefined();
  if (name == "trim" || name == "strip") {
    const Value &chars = arg(a, 0, "chars", none);
    std::string c = chars.isString() ? chars.str() : "";
    return makeStr(strip(textOf(v), true, true, chars.isString() ? &c : nullptr));
  }
  if (name == "length" || name == "count") return Value::integer(lengthOf(v, line));
  if (name == "tojson") {
    const Value &indent = arg(a, 0, "indent", none);
    return Value::string(v.toJson(indent.kind == Value::Kind::Int ? int(indent.i) : -1));
  }
  if (name == "string") return makeStr(textOf(v));
  if (name == "safe") return v;
  if (name == "lower") return makeStr(mapCase(textOf(v), 0));
  if (name == "upper") return makeStr(mapCase(textOf(v), 1));
  if (name == "title") return makeStr(mapCase(textOf(v), 2));
  if (name == "capitalize") return makeStr(mapCase(textOf(v), 3));
  if (name == "replace") {
    const Value &from = arg(a, 0, "old", undef), &to = arg(a, 1, "new", undef), &count = arg(a, 2, "count", none);
    if (!from.isString() || !to.isString()) fail("replace needs two strings", line);
    return makeStr(replace(textOf(v), from.str(), *to.s, count.kind == Value::Kind::Int ? count.i : -1));
  }
  if (name == "first" || name == "last") {
    List items = iterate(v, line);
    if (items.empty()) return Value::undefined("no first item, sequence was empty");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    const Value sep = arg(a, 0, "d", Value::string(""));
    const Value &attribute = arg(a, 1, "attribute", none);
    TaggedString out;
    List items = iterate(v, line);
    for (size_t k = 0; k < items.size(); ++k) {
      if (k) out.append(textOf(sep));
      out.append(textOf(attribute.isNone() ? items[k] : attr(items[k], attribute.toText().text)));
    }
    return makeStr(out);
  }
  if (name == "default" || name == "d") {
    const Value def = arg(a, 0, "default_value", Value::string(""));
    const Value boolean = arg(a, 1, "boolean", Value::boolean(false));
    if (v.isUndefined() || (boolean.truthy() && !v.truthy())) return def;
    return v;
  }
  if (name == "items") {
    if (v.isUndefined()) return Value::makeList();
    if (!v.isDict()) fail("items filter needs a mapping, got " + v.typeName(), line);
    List out;
    for (const auto &[k, val] : *v.dict) out.push_back(Value::makeList({Value::string(k), val}));
    return Value::makeList(std::move(out));
  }
  if (name == "list") return Value::makeList(iterate(v, line));
  if (name == "reverse") {
    if (v.isString()) {
      List chars = iterate(v, line);
      TaggedString out;
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) out.append(*it->s);
      return makeStr(out);
    }
    List items = iterate(v, line);
    std::reverse(items.begin(), items.end());
    return Value::makeList(std::move(items));
  }
  if (name == "unique") {
    List out;
    for (const Value &x : iterate(v, line))
      if (std::find(out.begin(), out.end(), x) == out.end()) out.push_back(x);
    return Value::makeList(std::move(out));
  }
  if (name == "sort") {
    List items = iterate(v, line);
    bool rev = arg(a, 0, "reverse", Value::boolean(false)).truthy();
    const Value &attribute = arg(a, 2, "attribute", none);
    auto key = [&](const Value &x) { return attribute.isNone() ? x : attr(x, attribute.toText().text); };
    std::stable_sort(items.begin(), items.end(),
                     [&](const Value &x, const Value &y) { return lessThan(key(x), key(y), line); });
    if (rev) std::reverse(items.begin(), items.end());
    return Value::makeList(std::move(items));
  }
  if (name == "int") {
    if (v.kind == Value::Kind::Int) return v;
    if (v.kind == Value::Kind::Float || v.kind == Value::Kind::Bool) return Value::integer(int64_t(v.asDouble()));
    if (v.isString()) {
      try {
        return Value::integer(std::stoll(v.str()));
      } catch (...) {
      }
    }
    return arg(a, 0, "default", Value::integer(0));
  }
  if (name == "float") {
    if (v.isNumber()) return Value::number(v.asDouble());
    if (v.isString()) {
      try {
        return Value::number(std::stod(v.str()));
      } catch (...) {
      }
    }
    return arg(a, 0, "default", Value::number(0));
  }
  if (name == "abs") {
    if (v.kind == Value::Kind::Int) return Value::integer(v.i < 0 ? -v.i : v.i);
    if (v.isNumber()) return Value::number(std::fabs(v.asDouble()));
    fail("abs needs a number", line);
  }
  if (name == "indent") {
    int64_t width = arg(a, 0, "width", Value::integer(4)).i;
    bool first = arg(a, 1, "first", Value::boolean(false)).truthy();
    bool blank = arg(a, 2, "blank", Value::boolean(false)).truthy();
    TaggedString s = textOf(v), out;
    std::string pad(size_t(std::max<int64_t>(0, width)), ' ');
    size_t start = 0;
    bool firstLine = true;
    while (start <= s.text.size()) {
      size_t nl = s.text.find('\n', start);
      size_t end = nl == std::string::npos ? s.text.size() : nl;
      bool isBlank = end == start;
      if ((!firstLine || first) && (!isBlank || blank)) out.append(pad);
      out.append(s.substr(start, nl == std::string::npos ? end : nl + 1));
      if (nl == std::string::npos) break;
      start = nl + 1;
      firstLine = false;
    }
    return makeStr(out);
  }
  if (name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject") {
    bool byAttr = name == "selectattr" || name == "rejectattr";
    bool keep = name == "selectattr" || name == "select";
    size_t k = 0;
    std::string attribute = byAttr ? arg(a, k++, "attribute", Value::string("")).toText().text : "";
    std::string test = k < a.positional.size() ? a.positional[k].toText().text : "";
    Args testArgs;
    for (size_t j = k + 1; j < a.positional.size(); ++j) testArgs.positional.push_back(a.positional[j]);
    List out;
    for (const Value &x : iterate(v, line)) {
      Value subject = byAttr ? attr(x, attribute) : x;
      bool pass = test.empty() ? subject.truthy() : applyTest(test, subject, testArgs, line);
      if (pass == keep) out.push_back(x);
    }
    return Value::makeList(std::move(out));
  }
  if (name == "map") {
    const Value &attribute = arg(a, 99, "attribute", undef);
    List out;
    if (!attribute.isUndefined()) {
      const Value &def = arg(a, 99, "default", undef);
      for (const Value &x : iterate(v, line)) {
        Value r = attr(x, attribute.toText().text);
        out.push_back(r.isUndefined() && !def.isUndefined() ? def : r);
      }
    } else {
      if (a.positional.empty()) fail("map needs a filter name or attribute=", line);
      std::string filter = a.positional[0].toText().text;
      Args rest;
      rest.positional.assign(a.positional.begin() + 1, a.positional.end());
      for (const Value &x : iterate(v, line)) out.push_back(applyFilter(filter, x, rest, line, attr));
    }
    return Value::makeList(std::move(out));
  }
  if (name == "sum") {
    double total = 0;
    bool allInt = true;
    for (const Value &x : iterate(v, line)) {
      if (!x.isNumber()) fail("sum needs numbers", line);
      allInt = allInt && x.kind != Value::Kind::Float;
      total += x.asDouble();
    }
    return allInt ? Value::integer(int64_t(total)) : Value::number(total);
  }
  if (name == "min" || name == "max") {
    List items = iterate(v, line);
    if (items.empty()) return Value::undefined("empty sequence");
    Value best = items[0];
    for (const Value &x : items)
      if (name == "min" ? lessThan(x, best, line) : lessThan(best, x, line)) best = x;
    return best;
  }
  if (name == "wordcount") return Value::integer(int64_t(split(textOf(v), none, -1, line).list->size()));
  fail("unsupported Jinja filter '" + name + "'", line);
}

bool applyTest(const std::string &name, const Value &v, Args &a, int line) {
  static const Value undef = Value::undefined();
  if (name == "defined") return !v.isUndefined();
  if (name == "undefined") return v.isUndefined();
  if (name == "none") return v.isNone();
  if (name == "string") return v.isString();
  if (name == "number") return v.isNumber() && v.kind != Value::Kind::Bool;
  if (name == "integer") return v.kind == Value::Kind::Int;
  if (name == "float") return v.kind == Value::Kind::Float;
  if (name == "boolean") return v.kind == Value::Kind::Bool;
  if (name == "true") return v.kind == Value::Kind::Bool && v.b;
  if (name == "false") return v.kind == Value::Kind::Bool && !v.b;
  if (name == "mapping") return v.isDict() && !v.isNamespace;
  if (name == "iterable") return v.isString() || v.isList() || v.isDict() || v.isUndefined();
  if (name == "sequence") return v.isString() || v.isList() || v.isDict();
  if (name == "callable") return v.kind == Value::Kind::Function;
  if (name == "odd" || name == "even") {
    if (v.kind != Value::Kind::Int) fail("the " + name + " test needs an integer", line);
    return (v.i % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value &n = arg(a, 0, "num", undef);
    if (v.kind != Value::Kind::Int || n.kind != Value::Kind::Int || n.i == 0) fail("divisibleby needs integers", line);
    return v.i % n.i == 0;
  }
  const Value &other = arg(a, 0, "other", undef);
  if (name == "eq" || name == "equalto" || name == "==" || name == "sameas") return v == other;
  if (name == "ne" || name == "!=") return !(v == other);
  if (name == "lt" || name == "lessthan" || name == "<") return lessThan(v, other, line);
  if (name == "gt" || name == "greaterthan" || name == ">") return lessThan(other, v, line);
  if (name == "le" || name == "<=") return !lessThan(other, v, line);
  if (name == "ge" || name == ">=") return !lessThan(v, other, line);
  if (name == "in") {
    if (other.isString()) return v.isString() && other.str().find(v.str()) != std::string::npos;
    if (other.isDict()) return v.isString() && other.find(v.str());
    if (other.isList()) return std::find(other.list->begin(), other.list->end(), v) != other.list->end();
    return false;
  }
  if (name == "lower" || name == "upper") {
    if (!v.isString()) return false;
    return mapCase(*v.s, name == "lower" ? 0 : 1).text == v.str();
  }
  fail("unsupported Jinja test '" + name + "'", line);
}

std::optional<Value> boundMethod(const Value &v, const std::string &name, int line) {
  (void)line;
  if (v.isString()) {
    Value self = v;
    auto str = [self](std::function<Value(const TaggedString &, Args &, int)> f) {
      return Value::function([self, f](Args &a, int l) { return f(*self.s, a, l); });
    };
    static const Value none = Value::none(), undef = Value::undefined();
    if (name == "strip" || name == "lstrip" || name == "rstrip")
      return str([name](const TaggedString &s, Args &a, int) {
        const Value &chars = arg(a, 0, "chars", none);
        std::string c = chars.isString() ? chars.str() : "";
        return makeStr(strip(s, name != "rstrip", name != "lstrip", chars.isString() ? &c : nullptr));
      });
    if (name == "split")
      return str([](const TaggedString &s, Args &a, int l) {
        const Value m = arg(a, 1, "maxsplit", Value::integer(-1));
        return split(s, arg(a, 0, "sep", none), m.i, l);
      });
    if (name == "startswith" || name == "endswith")
      return str([name](const TaggedString &s, Args &a, int l) {
        const Value &p = arg(a, 0, "prefix", undef);
        List options = p.isList() ? *p.list : List{p};
        for (const Value &o : options) {
          if (!o.isString()) fail(name + "() needs a string", l);
          const std::string &x = o.str();
          bool ok = x.size() <= s.text.size() &&
                    (name == "startswith" ? s.text.compare(0, x.size(), x) == 0
                                          : s.text.compare(s.text.size() - x.size(), x.size(), x) == 0);
          if (ok) return Value::boolean(true);
        }
        return Value::boolean(false);
      });
    if (name == "lower" || name == "upper" || name == "title" || name == "capitalize") {
      int mode = name == "lower" ? 0 : name == "upper" ? 1 : name == "title" ? 2 : 3;
      return str([mode](const TaggedString &s, Args &, int) { return makeStr(mapCase(s, mode)); });
    }
    if (name == "replace")
      return str([](const TaggedString &s, Args &a, int l) {
        const Value &from = arg(a, 0, "old", undef), &to = arg(a, 1, "new", undef), &c = arg(a, 2, "count", none);
        if (!from.isString() || !to.isString()) fail("replace() needs two strings", l);
        return makeStr(replace(s, from.str(), *to.s, c.kind == Value::Kind::Int ? c.i : -1));
      });
    if (name == "find" || name == "count")
      return str([name](const TaggedString &s, Args &a, int l) {
        const Value &sub = arg(a, 0, "sub", undef);
        if (!sub.isString()) fail(name + "() needs a string", l);
        if (name == "find") {
          size_t p = s.text.find(sub.str());
          return Value::integer(p == std::string::npos ? -1 : int64_t(text::codePointCount(s.text.substr(0, p))));
        }
        int64_t n = 0;
        if (!sub.str().empty())
          for (size_t p = s.text.find(sub.str()); p != std::string::npos; p = s.text.find(sub.str(), p + sub.str().size()))
            ++n;
        return Value::integer(n);
      });
    if (name == "join")
      return str([](const TaggedString &s, Args &a, int l) {
        TaggedString out;
        List items = iterate(arg(a, 0, "iterable", undef), l);
        for (size_t k = 0; k < items.size(); ++k) {
          if (k) out.append(s);
          out.append(textOf(items[k]));
        }
        return makeStr(out);
      });
    if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "isupper" || name == "islower")
      return str([name](const TaggedString &s, Args &, int) {
        if (s.text.empty()) return Value::boolean(false);
        size_t i = 0;
        while (i < s.text.size()) {
          char32_t c = decodeUtf8(s.text, i);
          utf8proc_category_t cat = utf8proc_category(utf8proc_int32_t(c));
          bool ok = name == "isdigit"   ? cat == UTF8PROC_CATEGORY_ND
                    : name == "isspace" ? isPythonSpace(c)
                    : name == "isalpha" ? (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO)
                    : name == "isupper" ? cat != UTF8PROC_CATEGORY_LL
                                        : cat != UTF8PROC_CATEGORY_LU;
          if (!ok) return Value::boolean(false);
        }
        return Value::boolean(true);
      });
    return std::nullopt;
  }
  if (v.isDict() && !v.isNamespace) {
    Value self = v;
    if (name == "items" || name == "keys" || name == "values")
      return Value::function([self, name](Args &, int) {
        List out;
        for (const auto &[k, val] : *self.dict) {
          if (name == "items") out.push_back(Value::makeList({Value::string(k), val}));
          else if (name == "keys") out.push_back(Value::string(k));
          else out.push_back(val);
        }
        return Value::makeList(std::move(out));
      });
    if (name == "get")
      return Value::function([self](Args &a, int) {
        static const Value none = Value::none(), undef = Value::undefined();
        const Value &key = arg(a, 0, "key", undef);
        const Value *found = key.isString() ? self.find(key.str()) : nullptr;
        return found ? *found : arg(a, 1, "default", none);
      });
  }
  return std::nullopt;
}

std::optional<Value> globalFunction(const std::string &name) {
  if (name == "raise_exception")
    return Value::function([](Args &a, int line) -> Value {
      std::string msg = a.positional.empty() ? "" : a.positional[0].toText().text;
      throw TemplateError("the chat template raised an error: " + msg, line);
    });
  if (name == "strftime_now")
    return Value::function([](Args &a, int) {
      std::string fmt = a.positional.empty() ? "" : a.positional[0].toText().text;
      std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[256];
      size_t n = std::strftime(buf, sizeof(buf), fmt.c_str(), &tm);
      return Value::string(std::string(buf, n));
    });
  if (name == "namespace" || name == "dict")
    return Value::function([name](Args &a, int line) {
      Value ns = Value::makeDict();
      ns.isNamespace = name == "namespace";
      for (const Value &p : a.positional) {
        if (!p.isDict()) fail(name + "() takes keyword arguments or a mapping", line);
        for (const auto &kv : *p.dict) ns.dict->push_back(kv);
      }
      for (auto &[k, v] : a.named) ns.dict->emplace_back(k, v);
      return ns;
    });
  if (name == "range")
    return Value::function([](Args &a, int line) {
      std::vector<int64_t> n;
      for (const Value &p : a.positional) {
        if (p.kind != Value::Kind::Int) fail("range() needs integers", line);
        n.push_back(p.i);
      }
      int64_t start = 0, stop = 0, step = 1;
      if (n.size() == 1) stop = n[0];
      else if (n.size() >= 2) {
        start = n[0];
        stop = n[1];
        if (n.size() == 3) step = n[2];
      }
      if (step == 0) fail("range() step must not be zero", line);
      List out;
      for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
        out.push_back(Value::integer(k));
        if (out.size() > 100000) fail("range() is too long", line);
      }
      return Value::makeList(std::move(out));
    });
  return std::nullopt;
}

} // namespace tessera::chat
