// Builtins.h - the filters, tests, string/dict methods and global functions
// the chat-template interpreter knows: the ones real chat templates use,
// with Python's and Jinja's semantics. An unknown one is a TemplateError
// naming it.
#pragma once

#include "runtime/chat/Value.h"

#include <functional>
#include <optional>
#include <string>

namespace tessera::chat {

// Looks up `name` on v as Jinja's getattr does (used by map/selectattr).
using AttrLookup = std::function<Value(const Value &, const std::string &)>;
// Applies another filter by name (used by map('lower')).
Value applyFilter(const std::string &name, const Value &v, Args &args, int line, const AttrLookup &attr);
bool applyTest(const std::string &name, const Value &v, Args &args, int line);
// A bound method of a str or dict (nullopt when v has no such method).
std::optional<Value> boundMethod(const Value &v, const std::string &name, int line);
// raise_exception, strftime_now, namespace, range, dict.
std::optional<Value> globalFunction(const std::string &name);

// Python's iteration: list items, dict keys, string characters (undefined: none).
List iterate(const Value &v, int line);

// Python's str.isspace for one code point.
bool isPythonSpace(char32_t c);

} // namespace tessera::chat
