// Ast.h - the parsed chat template: statements and expressions, each with
// its template line for errors.
#pragma once

#include "runtime/chat/Value.h"

#include <memory>
#include <string>
#include <vector>

namespace tessera::chat {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal, Name, GetAttr, GetItem, Slice, Call, Filter, Test, Not, Neg, Pos, Binary, Compare, And, Or,
    Cond, List, Dict
  };
  Kind kind;
  int line = 0;
  Value literal;                       // Literal
  std::string name;                    // Name, GetAttr, Filter, Test; Binary/Compare operator
  ExprPtr a, b, c, d;                  // operands (Slice: object, start, stop, step; Cond: then, cond, else)
  std::vector<ExprPtr> items;          // Call/Filter/Test positional args; List items; Dict keys
  std::vector<ExprPtr> values;         // Dict values
  std::vector<std::string> kwNames;    // Call/Filter keyword args
  std::vector<ExprPtr> kwValues;
  bool negated = false;                // Test: "is not"; Compare: "not in"
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind { Text, Output, If, For, Set, SetBlock, Macro, Break, Continue, Generation };
  Kind kind;
  int line = 0;
  std::string text;                   // Text
  ExprPtr expr;                       // Output, Set value, For iterable, SetBlock target
  // If: conditions[i] guards bodies[i]; a trailing body without a condition is the else.
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  // For: targets (one name or a tuple); filter; bodies[0] loop body, bodies[1] else.
  // Set: targets (names), or attrObject.attr for "set ns.attr = ...".
  std::vector<std::string> targets;
  std::string attrObject;
  ExprPtr filter;
  // Macro: name in targets[0], parameters and defaults.
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;      // one per param (nullptr: required)
};

struct Template {
  Body body;
};

} // namespace tessera::chat
