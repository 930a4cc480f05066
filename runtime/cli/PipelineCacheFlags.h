// PipelineCacheFlags.h - --pipeline-cache DIR / --no-pipeline-cache, shared
// by train, eval and generate (runtime/vulkan/PipelineCache.h).
#pragma once

#include "runtime/vulkan/PipelineCache.h"

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

namespace tessera::cli {

struct PipelineCacheFlags {
  std::string dir;
  CLI::Option *dirOpt = nullptr;
  bool off = false;
  // The folder the run uses ("" : no cache); TESSERA_PIPELINE_CACHE and the default when no flag is given.
  std::string resolve() const {
    return vk::resolvePipelineCacheDir(dirOpt && dirOpt->count() ? std::optional<std::string>(dir) : std::nullopt, off);
  }
};

inline void addPipelineCacheFlags(CLI::App &cmd, PipelineCacheFlags &f) {
  f.dirOpt = cmd.add_option("--pipeline-cache", f.dir,
                            "keep compiled pipelines in this folder between runs (default: $TESSERA_PIPELINE_CACHE, "
                            "else $XDG_CACHE_HOME/tessera or ~/.cache/tessera; empty: none)");
  cmd.add_flag("--no-pipeline-cache", f.off, "neither read nor write a pipeline cache");
}

} // namespace tessera::cli
