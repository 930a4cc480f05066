#include "runtime/chat/Parser.h"

#include "runtime/tokenizer/Utf8.h"

#include <cctype>
#include <cstdlib>

namespace tessera::chat {

namespace {

// ---- template level: text, {{ expressions }}, {% statements %} ----

struct Chunk {
  enum class Kind { Text, Expr, Stmt } kind;
  std::string text;
  int line;
};

bool isWs(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

int lineAt(const std::string &s, size_t pos, size_t &cachePos, int &cacheLine) {
  for (; cachePos < pos && cachePos < s.size(); ++cachePos)
    if (s[cachePos] == '\n') ++cacheLine;
  return cacheLine;
}

// The end of a tag: the closing delimiter outside string literals.
size_t findTagEnd(const std::string &s, size_t from, const char *close, int line) {
  char quote = 0;
  for (size_t i = from; i + 1 < s.size(); ++i) {
    char c = s[i];
    if (quote) {
      if (c == '\\') ++i;
      else if (c == quote) quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') quote = c;
    else if (c == close[0] && s[i + 1] == close[1]) return i;
  }
  throw TemplateError(std::string("unterminated tag: no '") + close + "'", line);
}

std::vector<Chunk> lexTemplate(std::string src) {
  // Jinja reads the source by lines: \r\n and \r become \n, and one trailing newline is dropped.
  std::string norm;
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      norm += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else norm += src[i];
  }
  if (!norm.empty() && norm.back() == '\n') norm.pop_back();
  src = std::move(norm);

  std::vector<Chunk> out;
  size_t pos = 0, cachePos = 0;
  int cacheLine = 1;
  bool lineStarting = true;
  while (pos <= src.size()) {
    size_t k = pos;
    while (true) {
      k = src.find('{', k);
      if (k == std::string::npos || k + 1 >= src.size()) {
        k = std::string::npos;
        break;
      }
      char n = src[k + 1];
      if (n == '{' || n == '%' || n == '#') break;
      ++k;
    }
    std::string text = src.substr(pos, k == std::string::npos ? std::string::npos : k - pos);
    if (k == std::string::npos) {
      if (!text.empty()) out.push_back({Chunk::Kind::Text, text, lineAt(src, pos, cachePos, cacheLine)});
      break;
    }
    int line = lineAt(src, k, cachePos, cacheLine);
    char kind = src[k + 1];
    size_t inner = k + 2;
    char mod = inner < src.size() ? src[inner] : 0;
    if (mod == '-') {
      while (!text.empty() && isWs(text.back())) text.pop_back();
      ++inner;
    } else {
      if (mod == '+') ++inner;
      if (mod != '+' && kind != '{') { // lstrip_blocks
        size_t lpos = text.rfind('\n');
        lpos = lpos == std::string::npos ? 0 : lpos + 1;
        if (lpos > 0 || lineStarting) {
          bool blank = true;
          for (size_t i = lpos; i < text.size(); ++i) blank = blank && (text[i] == ' ' || text[i] == '\t');
          if (blank) text.resize(lpos);
        }
      }
    }
    if (!text.empty()) out.push_back({Chunk::Kind::Text, text, lineAt(src, pos, cachePos, cacheLine)});
    const char *close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    size_t end = kind == '#' ? src.find("#}", inner) : findTagEnd(src, inner, close, line);
    if (end == std::string::npos) throw TemplateError("unterminated comment: no '#}'", line);
    std::string body = src.substr(inner, end - inner);
    size_t after = end + 2;
    bool rstrip = !body.empty() && body.back() == '-';
    bool plus = !body.empty() && body.back() == '+';
    if (rstrip || plus) body.pop_back();
    char last = 0;
    if (rstrip) {
      while (after < src.size() && isWs(src[after])) last = src[after++];
    } else if (!plus && kind != '{' && after < src.size() && src[after] == '\n') { // trim_blocks
      last = src[after++];
    }
    lineStarting = last == '\n';
    if (kind == '{') out.push_back({Chunk::Kind::Expr, body, line});
    else if (kind == '%') out.push_back({Chunk::Kind::Stmt, body, line});
    pos = after;
  }
  return out;
}

// ---- expression tokens ----

struct Tok {
  enum class Kind { Name, String, Int, Float, Op, End } kind;
  std::string text;
  int64_t i = 0;
  double f = 0;
};

std::vector<Tok> lexExpr(const std::string &s, int line) {
  std::vector<Tok> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (isWs(c)) {
      ++i;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      out.push_back({Tok::Kind::Name, s.substr(i, j - i)});
      i = j;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      bool isFloat = false;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
        isFloat = true;
        ++j;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      }
      if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
        if (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
          isFloat = true;
          j = k;
          while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        }
      }
      std::string num;
      for (size_t k = i; k < j; ++k)
        if (s[k] != '_') num += s[k];
      Tok t{isFloat ? Tok::Kind::Float : Tok::Kind::Int, num};
      if (isFloat) t.f = std::strtod(num.c_str(), nullptr);
      else t.i = std::strtoll(num.c_str(), nullptr, 10);
      out.push_back(t);
      i = j;
      continue;
    }
    if (c == '\'' || c == '"') {
      std::string v;
      size_t j = i + 1;
      while (j < s.size() && s[j] != c) {
        if (s[j] == '\\' && j + 1 < s.size()) {
          char e = s[++j];
          switch (e) {
          case 'n': v += '\n'; break;
          case 't': v += '\t'; break;
          case 'r': v += '\r'; break;
          case '0': v += '\0'; break;
          case 'b': v += '\b'; break;
          case 'f': v += '\f'; break;
          case 'v': v += '\v'; break;
          case 'a': v += '\a'; break;
          case '\\': v += '\\'; break;
          case '\'': v += '\''; break;
          case '"': v += '"'; break;
          case '\n': break;
          case 'x':
          case 'u':
          case 'U': {
            size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            if (j + n >= s.size()) throw TemplateError("bad \\" + std::string(1, e) + " escape in a string", line);
            text::appendUtf8(v, char32_t(std::strtoul(s.substr(j + 1, n).c_str(), nullptr, 16)));
            j += n;
            break;
          }
          default: v += '\\'; v += e; // Python keeps unknown escapes
          }
          ++j;
          continue;
        }
        v += s[j++];
      }
      if (j >= s.size()) throw TemplateError("unterminated string literal", line);
      out.push_back({Tok::Kind::String, v});
      i = j + 1;
      continue;
    }
    static const char *kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=",
                                 "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};
    bool found = false;
    for (const char *op : kOps) {
      size_t n = std::char_traits<char>::length(op);
      if (s.compare(i, n, op) == 0) {
        out.push_back({Tok::Kind::Op, op});
        i += n;
        found = true;
        break;
      }
    }
    if (!found) throw TemplateError(std::string("unexpected character '") + c + "' in an expression", line);
  }
  out.push_back({Tok::Kind::End, ""});
  return out;
}

// ---- expression parser (Jinja's precedence) ----

class ExprParser {
public:
  ExprParser(std::vector<Tok> toks, int line) : t_(std::move(toks)), line_(line) {}

  ExprPtr expression() { return condExpr(); }
  // Without a trailing "x if c": a for loop's "if" is its filter.
  ExprPtr expressionNoCond() { return orExpr(); }
  bool atEnd() const { return peek().kind == Tok::Kind::End; }
  const Tok &peek(size_t k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool isName(const char *n, size_t k = 0) const { return peek(k).kind == Tok::Kind::Name && peek(k).text == n; }
  bool isOp(const char *o, size_t k = 0) const { return peek(k).kind == Tok::Kind::Op && peek(k).text == o; }
  bool skipName(const char *n) {
    if (!isName(n)) return false;
    ++p_;
    return true;
  }
  bool skipOp(const char *o) {
    if (!isOp(o)) return false;
    ++p_;
    return true;
  }
  void expectOp(const char *o) {
    if (!skipOp(o)) fail(std::string("expected '") + o + "'");
  }
  std::string expectName() {
    if (peek().kind != Tok::Kind::Name) fail("expected a name");
    return t_[p_++].text;
  }
  void expectEnd() {
    if (!atEnd()) fail("unexpected '" + peek().text + "'");
  }
  [[noreturn]] void fail(const std::string &what) const {
    throw TemplateError(what + (atEnd() ? " at the end of the tag" : " near '" + peek().text + "'"), line_);
  }

private:
  ExprPtr node(Expr::Kind k) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line_;
    return e;
  }
  ExprPtr condExpr() {
    ExprPtr e = orExpr();
    while (skipName("if")) {
      auto c = node(Expr::Kind::Cond);
      c->b = orExpr();
      c->a = std::move(e);
      if (skipName("else")) c->c = condExpr();
      e = std::move(c);
    }
    return e;
  }
  ExprPtr orExpr() {
    ExprPtr e = andExpr();
    while (skipName("or")) {
      auto n = node(Expr::Kind::Or);
      n->a = std::move(e);
      n->b = andExpr();
      e = std::move(n);
    }
    return e;
  }
  ExprPtr andExpr() {
    ExprPtr e = notExpr();
    while (skipName("and")) {
      auto n = node(Expr::Kind::And);
      n->a = std::move(e);
      n->b = notExpr();
      e = std::move(n);
    }
    return e;
  }
  ExprPtr notExpr() {
    if (skipName("not")) {
      auto n = node(Expr::Kind::Not);
      n->a = notExpr();
      return n;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr e = math1();
    while (true) {
      std::string op;
      bool neg = false;
      if (peek().kind == Tok::Kind::Op &&
          (isOp("==") || isOp("!=") || isOp("<") || isOp(">") || isOp("<=") || isOp(">="))) {
        op = t_[p_++].text;
      } else if (isName("in")) {
        ++p_;
        op = "in";
      } else if (isName("not") && isName("in", 1)) {
        p_ += 2;
        op = "in";
        neg = true;
      } else {
        break;
      }
      auto n = node(Expr::Kind::Compare);
      n->name = op;
      n->negated = neg;
      n->a = std::move(e);
      n->b = math1();
      e = std::move(n);
    }
    return e;
  }
  ExprPtr binary(ExprPtr l, const std::string &op, ExprPtr r) {
    auto n = node(Expr::Kind::Binary);
    n->name = op;
    n->a = std::move(l);
    n->b = std::move(r);
    return n;
  }
  ExprPtr math1() {
    ExprPtr e = concat();
    while (isOp("+") || isOp("-")) {
      std::string op = t_[p_++].text;
      e = binary(std::move(e), op, concat());
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = math2();
    while (skipOp("~")) e = binary(std::move(e), "~", math2());
    return e;
  }
  ExprPtr math2() {
    ExprPtr e = pow();
    while (isOp("*") || isOp("/") || isOp("//") || isOp("%")) {
      std::string op = t_[p_++].text;
      e = binary(std::move(e), op, pow());
    }
    return e;
  }
  ExprPtr pow() {
    ExprPtr e = unary(true);
    while (skipOp("**")) e = binary(std::move(e), "**", unary(true));
    return e;
  }
  ExprPtr unary(bool withFilter) {
    ExprPtr e;
    if (skipOp("-")) {
      e = node(Expr::Kind::Neg);
      e->a = unary(false);
    } else if (skipOp("+")) {
      e = node(Expr::Kind::Pos);
      e->a = unary(false);
    } else {
      e = postfix(primary());
    }
    if (withFilter) e = filterExpr(std::move(e));
    return e;
  }
  ExprPtr primary() {
    const Tok &t = peek();
    if (t.kind == Tok::Kind::String) {
      std::string s;
      while (peek().kind == Tok::Kind::String) s += t_[p_++].text; // adjacent literals concatenate
      auto n = node(Expr::Kind::Literal);
      n->literal = Value::string(s);
      return n;
    }
    if (t.kind == Tok::Kind::Int || t.kind == Tok::Kind::Float) {
      auto n = node(Expr::Kind::Literal);
      n->literal = t.kind == Tok::Kind::Int ? Value::integer(t.i) : Value::number(t.f);
      ++p_;
      return n;
    }
    if (t.kind == Tok::Kind::Name) {
      ++p_;
      auto n = node(Expr::Kind::Literal);
      if (t.text == "true" || t.text == "True") n->literal = Value::boolean(true);
      else if (t.text == "false" || t.text == "False") n->literal = Value::boolean(false);
      else if (t.text == "none" || t.text == "None") n->literal = Value::none();
      else {
        n->kind = Expr::Kind::Name;
        n->name = t.text;
      }
      return n;
    }
    if (skipOp("(")) {
      if (skipOp(")")) return node(Expr::Kind::List); // ()
      ExprPtr e = expression();
      if (isOp(",")) { // a tuple
        auto l = node(Expr::Kind::List);
        l->items.push_back(std::move(e));
        while (skipOp(",")) {
          if (isOp(")")) break;
          l->items.push_back(expression());
        }
        e = std::move(l);
      }
      expectOp(")");
      return e;
    }
    if (skipOp("[")) {
      auto l = node(Expr::Kind::List);
      while (!isOp("]")) {
        l->items.push_back(expression());
        if (!skipOp(",")) break;
      }
      expectOp("]");
      return l;
    }
    if (skipOp("{")) {
      auto d = node(Expr::Kind::Dict);
      while (!isOp("}")) {
        d->items.push_back(expression());
        expectOp(":");
        d->values.push_back(expression());
        if (!skipOp(",")) break;
      }
      expectOp("}");
      return d;
    }
    fail("expected an expression");
  }
  void callArgs(Expr &n) {
    // after '(': positional and name=value arguments
    while (!isOp(")")) {
      if (peek().kind == Tok::Kind::Name && isOp("=", 1)) {
        n.kwNames.push_back(t_[p_].text);
        p_ += 2;
        n.kwValues.push_back(expression());
      } else {
        if (isOp("*") || isOp("**")) fail("*args and **kwargs in calls are not supported");
        n.items.push_back(expression());
      }
      if (!skipOp(",")) break;
    }
    expectOp(")");
  }
  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (skipOp(".")) {
        auto n = node(Expr::Kind::GetAttr);
        if (peek().kind == Tok::Kind::Int) { // x.0 is x[0]
          n->kind = Expr::Kind::GetItem;
          n->b = node(Expr::Kind::Literal);
          n->b->literal = Value::integer(t_[p_++].i);
        } else {
          n->name = expectName();
        }
        n->a = std::move(e);
        e = std::move(n);
      } else if (skipOp("[")) {
        ExprPtr start, stop, step;
        bool slice = false;
        if (!isOp(":")) start = expression();
        if (skipOp(":")) {
          slice = true;
          if (!isOp("]") && !isOp(":")) stop = expression();
          if (skipOp(":") && !isOp("]")) step = expression();
        }
        expectOp("]");
        auto n = node(slice ? Expr::Kind::Slice : Expr::Kind::GetItem);
        n->a = std::move(e);
        n->b = std::move(start);
        n->c = std::move(stop);
        n->d = std::move(step);
        e = std::move(n);
      } else if (skipOp("(")) {
        auto n = node(Expr::Kind::Call);
        n->a = std::move(e);
        callArgs(*n);
        e = std::move(n);
      } else {
        return e;
      }
    }
  }
  ExprPtr filterExpr(ExprPtr e) {
    while (true) {
      if (skipOp("|")) {
        auto n = node(Expr::Kind::Filter);
        n->name = expectName();
        while (skipOp(".")) n->name += "." + expectName();
        n->a = std::move(e);
        if (skipOp("(")) callArgs(*n);
        e = postfix(std::move(n));
      } else if (skipName("is")) {
        auto n = node(Expr::Kind::Test);
        n->negated = skipName("not");
        n->name = expectName();
        n->a = std::move(e);
        if (skipOp("(")) {
          callArgs(*n);
        } else if (peek().kind == Tok::Kind::String || peek().kind == Tok::Kind::Int ||
                   peek().kind == Tok::Kind::Float || (peek().kind == Tok::Kind::Name && !isName("and") &&
                                                        !isName("or") && !isName("else") && !isName("if") &&
                                                        !isName("not") && !isName("in") && !isName("is"))) {
          n->items.push_back(primary()); // "is divisibleby 3", "is sameas none"
        }
        e = std::move(n);
      } else {
        return e;
      }
    }
  }

  std::vector<Tok> t_;
  size_t p_ = 0;
  int line_;
};

// ---- statements ----

class StmtParser {
public:
  explicit StmtParser(std::vector<Chunk> chunks) : c_(std::move(chunks)) {}

  Template parse() {
    Template t;
    std::string end = parseBody(t.body, {});
    if (!end.empty()) throw TemplateError("unexpected {% " + end + " %}", lastLine_);
    return t;
  }

private:
  static std::string firstWord(const std::string &s) {
    size_t b = 0;
    while (b < s.size() && isWs(s[b])) ++b;
    size_t e = b;
    while (e < s.size() && (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
    return s.substr(b, e - b);
  }

  std::unique_ptr<Stmt> stmt(Stmt::Kind k, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = line;
    return s;
  }

  // Parses until a statement whose first word is in `ends` (returned, with
  // its tokens left in `endTokens_`), or the end of the template ("").
  std::string parseBody(Body &body, const std::vector<std::string> &ends) {
    while (i_ < c_.size()) {
      const Chunk &ch = c_[i_++];
      lastLine_ = ch.line;
      if (ch.kind == Chunk::Kind::Text) {
        auto s = stmt(Stmt::Kind::Text, ch.line);
        s->text = ch.text;
        body.push_back(std::move(s));
        continue;
      }
      if (ch.kind == Chunk::Kind::Expr) {
        ExprParser p(lexExpr(ch.text, ch.line), ch.line);
        auto s = stmt(Stmt::Kind::Output, ch.line);
        s->expr = p.expression();
        p.expectEnd();
        body.push_back(std::move(s));
        continue;
      }
      std::string word = firstWord(ch.text);
      for (const std::string &e : ends)
        if (word == e) {
          endChunk_ = ch;
          return word;
        }
      body.push_back(statement(ch, word, ends));
    }
    if (!ends.empty()) {
      std::string want;
      for (const std::string &e : ends) want += (want.empty() ? "" : " or ") + ("{% " + e + " %}");
      throw TemplateError("missing " + want + " before the end of the template", lastLine_);
    }
    return "";
  }

  std::unique_ptr<Stmt> statement(const Chunk &ch, const std::string &word, const std::vector<std::string> &ends) {
    int line = ch.line;
    ExprParser p(lexExpr(ch.text, line), line);
    p.expectName(); // the keyword
    if (word == "if") {
      auto s = stmt(Stmt::Kind::If, line);
      s->conditions.push_back(p.expression());
      p.expectEnd();
      while (true) {
        Body b;
        std::string end = parseBody(b, {"elif", "else", "endif"});
        s->bodies.push_back(std::move(b));
        if (end == "endif") break;
        ExprParser q(lexExpr(endChunk_.text, endChunk_.line), endChunk_.line);
        q.expectName();
        if (end == "elif") {
          s->conditions.push_back(q.expression());
          q.expectEnd();
        } else { // else: the last body
          q.expectEnd();
          Body eb;
          std::string close = parseBody(eb, {"endif"});
          (void)close;
          s->bodies.push_back(std::move(eb));
          break;
        }
      }
      return s;
    }
    if (word == "for") {
      auto s = stmt(Stmt::Kind::For, line);
      s->targets.push_back(p.expectName());
      while (p.skipOp(",")) s->targets.push_back(p.expectName());
      if (!p.skipName("in")) p.fail("expected 'in'");
      // Jinja parses the iterable without conditional expressions, so a trailing "if" is the loop filter.
      s->expr = p.expressionNoCond();
      if (p.skipName("if")) s->filter = p.expression();
      if (p.isName("recursive")) throw TemplateError("unsupported Jinja construct 'for ... recursive'", line);
      p.expectEnd();
      Body b, eb;
      std::string end = parseBody(b, {"else", "endfor"});
      s->bodies.push_back(std::move(b));
      if (end == "else") parseBody(eb, {"endfor"});
      s->bodies.push_back(std::move(eb));
      return s;
    }
    if (word == "set") {
      std::string first = p.expectName();
      if (p.skipOp(".")) {
        auto s = stmt(Stmt::Kind::Set, line);
        s->attrObject = first;
        s->targets.push_back(p.expectName());
        p.expectOp("=");
        s->expr = p.expression();
        p.expectEnd();
        return s;
      }
      std::vector<std::string> targets{first};
      while (p.skipOp(",")) targets.push_back(p.expectName());
      if (p.atEnd()) { // {% set x %}...{% endset %}
        auto s = stmt(Stmt::Kind::SetBlock, line);
        s->targets = targets;
        Body b;
        parseBody(b, {"endset"});
        s->bodies.push_back(std::move(b));
        return s;
      }
      auto s = stmt(Stmt::Kind::Set, line);
      s->targets = targets;
      p.expectOp("=");
      s->expr = p.expression();
      if (p.isOp(",")) { // set a, b = 1, 2
        auto l = std::make_unique<Expr>();
        l->kind = Expr::Kind::List;
        l->line = line;
        l->items.push_back(std::move(s->expr));
        while (p.skipOp(",")) l->items.push_back(p.expression());
        s->expr = std::move(l);
      }
      p.expectEnd();
      return s;
    }
    if (word == "macro") {
      auto s = stmt(Stmt::Kind::Macro, line);
      s->targets.push_back(p.expectName());
      p.expectOp("(");
      while (!p.isOp(")")) {
        s->params.push_back(p.expectName());
        s->defaults.push_back(p.skipOp("=") ? p.expression() : nullptr);
        if (!p.skipOp(",")) break;
      }
      p.expectOp(")");
      p.expectEnd();
      Body b;
      parseBody(b, {"endmacro"});
      s->bodies.push_back(std::move(b));
      return s;
    }
    if (word == "break" || word == "continue") {
      p.expectEnd();
      return stmt(word == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, line);
    }
    if (word == "generation") {
      p.expectEnd();
      auto s = stmt(Stmt::Kind::Generation, line);
      Body b;
      parseBody(b, {"endgeneration"});
      s->bodies.push_back(std::move(b));
      return s;
    }
    static const char *kKnownEnds[] = {"endif", "endfor", "endset", "endmacro", "endgeneration", "elif", "else"};
    for (const char *e : kKnownEnds)
      if (word == e) throw TemplateError("unexpected {% " + word + " %}", line);
    (void)ends;
    throw TemplateError("unsupported Jinja construct '{% " + word + " %}'", line);
  }

  std::vector<Chunk> c_;
  size_t i_ = 0;
  Chunk endChunk_{Chunk::Kind::Text, "", 0};
  int lastLine_ = 1;
};

} // namespace

Template parseTemplate(const std::string &source) {
  return StmtParser(lexTemplate(source)).parse();
}

} // namespace tessera::chat
