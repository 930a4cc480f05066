// Parser.h - Jinja source to the AST, with the lexing options transformers
// renders chat templates with (trim_blocks, lstrip_blocks, no trailing
// newline, the loopcontrols extension and its {% generation %} tag). A
// construct outside the subset is a TemplateError naming it and its line.
#pragma once

#include "runtime/chat/Ast.h"

#include <string>

namespace tessera::chat {

Template parseTemplate(const std::string &source);

} // namespace tessera::chat
