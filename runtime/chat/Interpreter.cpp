#include "runtime/chat/Interpreter.h"

#include "runtime/chat/Builtins.h"
#include "runtime/tokenizer/Utf8.h"

#include <cmath>
#include <unordered_map>

namespace tessera::chat {

namespace {

[[noreturn]] void fail(const std::string &what, int line) { throw TemplateError(what, line); }

enum class Flow { Normal, Break, Continue };

class Renderer {
public:
  explicit Renderer(const std::map<std::string, Value> &context) {
    scopes_.emplace_back(context.begin(), context.end());
  }

  Rendering run(const Template &t) {
    exec(t.body);
    return std::move(out_);
  }

private:
  using Scope = std::unordered_map<std::string, Value>;

  void emit(const TaggedString &s) {
    out_.text.append(s);
    out_.generation.insert(out_.generation.end(), s.text.size(), uint8_t(generationDepth_ > 0));
  }

  const Value *lookup(const std::string &name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return &f->second;
      if (it->count("\x01" "barrier")) break; // a macro body sees only its own scope and the globals
    }
    auto g = scopes_.front().find(name);
    return g == scopes_.front().end() ? nullptr : &g->second;
  }

  Flow exec(const Body &body) {
    for (const auto &s : body) {
      Flow f = exec(*s);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec(const Stmt &s) {
    switch (s.kind) {
    case Stmt::Kind::Text: emit(TaggedString(s.text)); return Flow::Normal;
    case Stmt::Kind::Output: emit(eval(*s.expr).toText()); return Flow::Normal;
    case Stmt::Kind::If:
      for (size_t k = 0; k < s.bodies.size(); ++k)
        if (k >= s.conditions.size() || eval(*s.conditions[k]).truthy()) return exec(s.bodies[k]);
      return Flow::Normal;
    case Stmt::Kind::For: return execFor(s);
    case Stmt::Kind::Set: {
      Value v = eval(*s.expr);
      if (!s.attrObject.empty()) {
        const Value *ns = lookup(s.attrObject);
        if (!ns || !ns->isNamespace)
          fail("cannot set an attribute of '" + s.attrObject + "': only namespace() objects can be changed", s.line);
        // A namespace holding itself would be a reference cycle (never freed).
        if (holds(v, ns->dict.get()))
          fail("cannot set " + s.attrObject + "." + s.targets[0] + " to a value that holds '" + s.attrObject + "' itself",
               s.line);
        for (auto &kv : *ns->dict)
          if (kv.first == s.targets[0]) {
            kv.second = v;
            return Flow::Normal;
          }
        ns->dict->emplace_back(s.targets[0], v);
        return Flow::Normal;
      }
      assign(s.targets, v, s.line);
      return Flow::Normal;
    }
    case Stmt::Kind::SetBlock: {
      Rendering saved = std::move(out_);
      out_ = Rendering();
      exec(s.bodies[0]);
      Rendering inner = std::move(out_);
      out_ = std::move(saved);
      out_.hasGenerationBlocks = out_.hasGenerationBlocks || inner.hasGenerationBlocks;
      assign(s.targets, Value::string(inner.text), s.line);
      return Flow::Normal;
    }
    case Stmt::Kind::Macro: {
      const Stmt *macro = &s;
      scopes_.back()[s.targets[0]] = Value::function([this, macro](Args &a, int line) { return callMacro(*macro, a, line); });
      return Flow::Normal;
    }
    case Stmt::Kind::Break:
      if (!loopDepth_) fail("{% break %} outside a loop", s.line);
      return Flow::Break;
    case Stmt::Kind::Continue:
      if (!loopDepth_) fail("{% continue %} outside a loop", s.line);
      return Flow::Continue;
    case Stmt::Kind::Generation: {
      out_.hasGenerationBlocks = true;
      ++generationDepth_;
      Flow f = exec(s.bodies[0]);
      --generationDepth_;
      return f;
    }
    }
    return Flow::Normal;
  }

  void assign(const std::vector<std::string> &targets, const Value &v, int line) {
    if (targets.size() == 1) {
      scopes_.back()[targets[0]] = v;
      return;
    }
    if (!v.isList() || v.list->size() != targets.size())
      fail("cannot unpack " + v.typeName() + " into " + std::to_string(targets.size()) + " names", line);
    for (size_t k = 0; k < targets.size(); ++k) scopes_.back()[targets[k]] = (*v.list)[k];
  }

  Flow execFor(const Stmt &s) {
    List all = iterate(eval(*s.expr), s.line);
    List chosen;
    if (s.filter) {
      for (const Value &x : all) {
        scopes_.emplace_back();
        assign(s.targets, x, s.line);
        bool keep = eval(*s.filter).truthy();
        scopes_.pop_back();
        if (keep) chosen.push_back(x);
      }
    } else {
      chosen = std::move(all);
    }
    if (chosen.empty()) {
      scopes_.emplace_back();
      exec(s.bodies[1]);
      scopes_.pop_back();
      return Flow::Normal;
    }
    ++loopDepth_;
    const int64_t n = int64_t(chosen.size());
    for (int64_t k = 0; k < n; ++k) {
      scopes_.emplace_back();
      Dict loop = {{"index", Value::integer(k + 1)},       {"index0", Value::integer(k)},
                   {"revindex", Value::integer(n - k)},    {"revindex0", Value::integer(n - k - 1)},
                   {"first", Value::boolean(k == 0)},      {"last", Value::boolean(k == n - 1)},
                   {"length", Value::integer(n)},
                   {"previtem", k > 0 ? chosen[size_t(k - 1)] : Value::undefined("there is no previous item")},
                   {"nextitem", k + 1 < n ? chosen[size_t(k + 1)] : Value::undefined("there is no next item")}};
      scopes_.back()["loop"] = Value::makeDict(std::move(loop));
      assign(s.targets, chosen[size_t(k)], s.line);
      Flow f = exec(s.bodies[0]);
      scopes_.pop_back();
      if (f == Flow::Break) break;
    }
    --loopDepth_;
    return Flow::Normal;
  }

  // Whether v is, or contains, the dict d (namespaces are the only mutable values).
  static bool holds(const Value &v, const Dict *d) {
    if (v.dict) {
      if (v.dict.get() == d) return true;
      for (const auto &kv : *v.dict)
        if (holds(kv.second, d)) return true;
    }
    if (v.list)
      for (const Value &e : *v.list)
        if (holds(e, d)) return true;
    return false;
  }

  Value callMacro(const Stmt &m, Args &a, int line) {
    // A macro that calls itself without end must fail, not overflow the stack.
    if (macroDepth_ >= kMaxMacroDepth)
      fail("macro '" + m.targets[0] + "': calls nested deeper than " + std::to_string(kMaxMacroDepth) +
               " (does it call itself without end?)",
           line);
    ++macroDepth_;
    struct Leave {
      int &depth;
      ~Leave() { --depth; }
    } leave{macroDepth_};
    Scope scope;
    scope["\x01" "barrier"] = Value::none();
    for (size_t k = 0; k < m.params.size(); ++k) {
      const Value *given = k < a.positional.size() ? &a.positional[k] : nullptr;
      for (const auto &[name, v] : a.named)
        if (name == m.params[k]) given = &v;
      if (given) scope[m.params[k]] = *given;
      else if (m.defaults[k]) scope[m.params[k]] = eval(*m.defaults[k]);
      else scope[m.params[k]] = Value::undefined(m.params[k]);
    }
    if (a.positional.size() > m.params.size()) fail("macro '" + m.targets[0] + "' takes " +
                                                    std::to_string(m.params.size()) + " arguments", line);
    Rendering saved = std::move(out_);
    out_ = Rendering();
    scopes_.push_back(std::move(scope));
    int savedLoops = loopDepth_;
    loopDepth_ = 0;
    exec(m.bodies[0]);
    loopDepth_ = savedLoops;
    scopes_.pop_back();
    Rendering inner = std::move(out_);
    out_ = std::move(saved);
    return Value::string(inner.text);
  }

  // Jinja's getattr (x.name): a method first, then the item.
  Value getAttr(const Value &obj, const std::string &name, int line) {
    if (obj.isUndefined())
      fail("'" + (obj.undefinedName.empty() ? std::string("value") : obj.undefinedName) + "' is undefined (reading ." +
               name + ")",
           line);
    if (auto m = boundMethod(obj, name, line)) return *m;
    if (obj.isDict())
      if (const Value *v = obj.find(name)) return *v;
    return Value::undefined(obj.typeName() + " object has no attribute '" + name + "'");
  }

  // x[key]: the item first, then a method.
  Value getItem(const Value &obj, const Value &key, int line) {
    if (obj.isUndefined())
      fail("'" + (obj.undefinedName.empty() ? std::string("value") : obj.undefinedName) + "' is undefined (reading [" +
               key.repr() + "])",
           line);
    if (obj.isDict()) {
      if (key.isString())
        if (const Value *v = obj.find(key.str())) return *v;
      if (key.isString())
        if (auto m = boundMethod(obj, key.str(), line)) return *m;
      return Value::undefined(obj.typeName() + " object has no element " + key.repr());
    }
    if (obj.isList() || obj.isString()) {
      if (key.kind != Value::Kind::Int && key.kind != Value::Kind::Bool) {
        if (key.isString())
          if (auto m = boundMethod(obj, key.str(), line)) return *m;
        fail(obj.typeName() + " indices must be integers, not " + key.typeName(), line);
      }
      List seq = obj.isList() ? *obj.list : iterate(obj, line);
      int64_t k = key.kind == Value::Kind::Bool ? int64_t(key.b) : key.i;
      int64_t n = int64_t(seq.size());
      if (k < 0) k += n;
      if (k < 0 || k >= n) return Value::undefined(obj.typeName() + " object has no element " + key.repr());
      return seq[size_t(k)];
    }
    return Value::undefined(obj.typeName() + " object has no element " + key.repr());
  }

  Value slice(const Value &obj, const Expr &e) {
    auto intOr = [&](const ExprPtr &x, bool &given) -> int64_t {
      given = false;
      if (!x) return 0;
      Value v = eval(*x);
      if (v.isNone()) return 0;
      if (v.kind != Value::Kind::Int) fail("slice indices must be integers", e.line);
      given = true;
      return v.i;
    };
    bool hasStart, hasStop, hasStep;
    int64_t start = intOr(e.b, hasStart), stop = intOr(e.c, hasStop), step = intOr(e.d, hasStep);
    if (!hasStep) step = 1;
    if (step == 0) fail("slice step cannot be zero", e.line);
    if (obj.isUndefined()) fail("'" + obj.undefinedName + "' is undefined (slicing it)", e.line);
    List seq = iterate(obj, e.line);
    int64_t n = int64_t(seq.size());
    // Python's slice.indices().
    auto norm = [&](int64_t v, bool given, int64_t dflt) {
      if (!given) return dflt;
      if (v < 0) v += n;
      if (step > 0) return std::clamp<int64_t>(v, 0, n);
      return std::clamp<int64_t>(v, -1, n - 1);
    };
    start = norm(start, hasStart, step > 0 ? 0 : n - 1);
    stop = norm(stop, hasStop, step > 0 ? n : -1);
    List out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) out.push_back(seq[size_t(k)]);
    if (obj.isString()) {
      TaggedString s;
      for (const Value &c : out) s.append(*c.s);
      return Value::string(s);
    }
    return Value::makeList(std::move(out));
  }

  Args evalArgs(const Expr &e, size_t skip = 0) {
    Args a;
    for (size_t k = skip; k < e.items.size(); ++k) a.positional.push_back(eval(*e.items[k]));
    for (size_t k = 0; k < e.kwNames.size(); ++k) a.named.emplace_back(e.kwNames[k], eval(*e.kwValues[k]));
    return a;
  }

  static void requireDefined(const Value &v, int line) {
    if (v.isUndefined()) fail("'" + (v.undefinedName.empty() ? std::string("value") : v.undefinedName) + "' is undefined", line);
  }

  Value binary(const std::string &op, const Value &l, const Value &r, int line) {
    if (op == "~") {
      TaggedString s = l.toText();
      s.append(r.toText());
      return Value::string(s);
    }
    requireDefined(l, line);
    requireDefined(r, line);
    if (op == "+") {
      if (l.isString() && r.isString()) {
        TaggedString s = *l.s;
        s.append(*r.s);
        return Value::string(s);
      }
      if (l.isList() && r.isList()) {
        List out = *l.list;
        out.insert(out.end(), r.list->begin(), r.list->end());
        return Value::makeList(std::move(out));
      }
    }
    if (op == "*" && ((l.isString() && r.kind == Value::Kind::Int) || (l.isList() && r.kind == Value::Kind::Int))) {
      if (l.isString()) {
        TaggedString s;
        for (int64_t k = 0; k < r.i; ++k) s.append(*l.s);
        return Value::string(s);
      }
      List out;
      for (int64_t k = 0; k < r.i; ++k) out.insert(out.end(), l.list->begin(), l.list->end());
      return Value::makeList(std::move(out));
    }
    if (l.isNumber() && r.isNumber()) {
      bool ints = l.kind != Value::Kind::Float && r.kind != Value::Kind::Float;
      double a = l.asDouble(), b = r.asDouble();
      int64_t ia = l.kind == Value::Kind::Bool ? l.b : l.i, ib = r.kind == Value::Kind::Bool ? r.b : r.i;
      if (op == "+") return ints ? Value::integer(ia + ib) : Value::number(a + b);
      if (op == "-") return ints ? Value::integer(ia - ib) : Value::number(a - b);
      if (op == "*") return ints ? Value::integer(ia * ib) : Value::number(a * b);
      if (op == "/") {
        if (b == 0) fail("division by zero", line);
        return Value::number(a / b);
      }
      if (op == "//" || op == "%") {
        if (b == 0) fail("integer division or modulo by zero", line);
        if (ints) {
          int64_t q = ia / ib, m = ia % ib;
          if (m != 0 && ((m < 0) != (ib < 0))) {
            --q;
            m += ib;
          }
          return Value::integer(op == "//" ? q : m);
        }
        double q = std::floor(a / b);
        return Value::number(op == "//" ? q : a - q * b);
      }
      if (op == "**") return ints && ib >= 0 ? Value::integer(int64_t(std::llround(std::pow(a, b)))) : Value::number(std::pow(a, b));
    }
    if (op == "%" && l.isString()) fail("string formatting with % is not supported", line);
    fail("unsupported operand types for " + op + ": '" + l.typeName() + "' and '" + r.typeName() + "'", line);
  }

  bool compare(const std::string &op, const Value &l, const Value &r, int line) {
    if (op == "==") return l == r;
    if (op == "!=") return !(l == r);
    if (op == "in") {
      if (r.isString()) {
        if (!l.isString()) fail("'in <string>' requires a string on the left, not " + l.typeName(), line);
        return r.str().find(l.str()) != std::string::npos;
      }
      if (r.isList()) {
        for (const Value &x : *r.list)
          if (x == l) return true;
        return false;
      }
      if (r.isDict()) return l.isString() && r.find(l.str());
      if (r.isUndefined()) return false;
      fail("argument of type '" + r.typeName() + "' is not iterable", line);
    }
    auto less = [&](const Value &a, const Value &b) {
      if (a.isNumber() && b.isNumber()) return a.asDouble() < b.asDouble();
      if (a.isString() && b.isString()) return a.str() < b.str();
      fail("'" + op + "' not supported between '" + a.typeName() + "' and '" + b.typeName() + "'", line);
    };
    if (op == "<") return less(l, r);
    if (op == ">") return less(r, l);
    if (op == "<=") return !less(r, l);
    if (op == ">=") return !less(l, r);
    fail("unknown comparison " + op, line);
  }

  Value eval(const Expr &e) {
    switch (e.kind) {
    case Expr::Kind::Literal: return e.literal;
    case Expr::Kind::Name: {
      if (const Value *v = lookup(e.name)) return *v;
      if (auto g = globalFunction(e.name)) return *g;
      return Value::undefined(e.name);
    }
    case Expr::Kind::GetAttr: return getAttr(eval(*e.a), e.name, e.line);
    case Expr::Kind::GetItem: return getItem(eval(*e.a), eval(*e.b), e.line);
    case Expr::Kind::Slice: return slice(eval(*e.a), e);
    case Expr::Kind::Call: {
      Value callee = eval(*e.a);
      if (callee.kind != Value::Kind::Function) {
        std::string what = callee.isUndefined() ? callee.undefinedName : callee.typeName() + " value";
        fail("cannot call '" + what + "': not a function this template interpreter knows", e.line);
      }
      Args a = evalArgs(e);
      return (*callee.fn)(a, e.line);
    }
    case Expr::Kind::Filter: {
      Value v = eval(*e.a);
      Args a = evalArgs(e);
      return applyFilter(e.name, v, a, e.line,
                         [this, &e](const Value &x, const std::string &n) { return attrPath(x, n, e.line); });
    }
    case Expr::Kind::Test: {
      Value v = eval(*e.a);
      Args a = evalArgs(e);
      return Value::boolean(applyTest(e.name, v, a, e.line) != e.negated);
    }
    case Expr::Kind::Not: return Value::boolean(!eval(*e.a).truthy());
    case Expr::Kind::Neg:
    case Expr::Kind::Pos: {
      Value v = eval(*e.a);
      if (!v.isNumber()) fail("bad operand type for unary " + std::string(e.kind == Expr::Kind::Neg ? "-" : "+") + ": '" +
                                  v.typeName() + "'", e.line);
      if (e.kind == Expr::Kind::Pos) return v;
      return v.kind == Value::Kind::Float ? Value::number(-v.f) : Value::integer(-(v.kind == Value::Kind::Bool ? v.b : v.i));
    }
    case Expr::Kind::Binary: {
      Value l = eval(*e.a);
      return binary(e.name, l, eval(*e.b), e.line);
    }
    case Expr::Kind::Compare: {
      Value l = eval(*e.a);
      bool r = compare(e.name, l, eval(*e.b), e.line);
      return Value::boolean(e.negated ? !r : r);
    }
    case Expr::Kind::And: {
      Value l = eval(*e.a);
      return l.truthy() ? eval(*e.b) : l;
    }
    case Expr::Kind::Or: {
      Value l = eval(*e.a);
      return l.truthy() ? l : eval(*e.b);
    }
    case Expr::Kind::Cond:
      if (eval(*e.b).truthy()) return eval(*e.a);
      return e.c ? eval(*e.c) : Value::undefined("the else branch of a conditional expression");
    case Expr::Kind::List: {
      List l;
      for (const auto &x : e.items) l.push_back(eval(*x));
      return Value::makeList(std::move(l));
    }
    case Expr::Kind::Dict: {
      Dict d;
      for (size_t k = 0; k < e.items.size(); ++k) {
        Value key = eval(*e.items[k]);
        if (!key.isString()) fail("dict keys must be strings here", e.line);
        Value v = eval(*e.values[k]);
        bool replaced = false;
        for (auto &kv : d)
          if (kv.first == key.str()) {
            kv.second = v;
            replaced = true;
          }
        if (!replaced) d.emplace_back(key.str(), v);
      }
      return Value::makeDict(std::move(d));
    }
    }
    return Value::undefined();
  }

  // "a.b" attribute paths of map(attribute=...) and selectattr.
  Value attrPath(const Value &x, const std::string &path, int line) {
    Value v = x;
    size_t start = 0;
    while (true) {
      size_t dot = path.find('.', start);
      std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (v.isUndefined()) return v;
      v = getItem(v, Value::string(part), line);
      if (dot == std::string::npos) return v;
      start = dot + 1;
    }
  }

  std::vector<Scope> scopes_;
  Rendering out_;
  int generationDepth_ = 0, loopDepth_ = 0;
  static constexpr int kMaxMacroDepth = 64;
  int macroDepth_ = 0;
};

} // namespace

Rendering renderTemplate(const Template &t, const std::map<std::string, Value> &context) {
  return Renderer(context).run(t);
}

} // namespace tessera::chat
