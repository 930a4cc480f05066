// GenerateCommand.h - `tessera generate`: a generation plan's text (or ids)
// for a prompt, or a chat read from stdin (runtime/generate).
#pragma once

namespace CLI {
class App;
}

namespace tessera {

void addGenerateCommand(CLI::App &app);

} // namespace tessera
