// Interpreter.h - renders a parsed template with Jinja's semantics: scoping
// (a for-loop iteration and a macro call have their own variables,
// namespace() objects are shared), loop.*, undefined values, break/continue
// and transformers' {% generation %} blocks.
#pragma once

#include "runtime/chat/Ast.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tessera::chat {

struct Rendering {
  TaggedString text;               // with the tags of the message contents it holds
  std::vector<uint8_t> generation; // per byte: 1 inside a {% generation %} block
  bool hasGenerationBlocks = false;
};

Rendering renderTemplate(const Template &t, const std::map<std::string, Value> &context);

} // namespace tessera::chat
