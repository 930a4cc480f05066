//===- BuildInference.h - @prefill and @decode for generation ---*- C++ -*-===//
//
// Builds the two tensor-level functions `tessera generate` runs, from the
// raised (and LoRA-injected) forward of the same model imported twice: at the
// context length T and at one token.
//
//   @prefill(input_ids: [1, T] i32)
//       -> (logits [1, T, V], k_0, v_0, ..., k_{L-1}, v_{L-1})
//     the forward at T, also returning every layer's attention keys (after
//     RoPE) and values [1, KVH, T, D]: they fill the KV cache. Positions past
//     the prompt hold padding whose keys the causal mask hides from the prompt
//     and decode overwrites before using them.
//
//   @decode(token: [1, 1] i32, position: [1] i32, k_0, v_0, ...)
//       -> (logits [1, 1, V], k_0', v_0', ...)
//     the one-token forward with, per layer, RoPE at `position` (rows of the
//     T-long tables gathered at run time), the new key / value blended into
//     the cache at `position` (cache * (1 - onehot) + new * onehot, exact),
//     and attention over the whole cache with a mask computed from
//     `position` (causal, and the layer's sliding window).
//
// Arguments and results carry `tessera.buffer` (the plan buffer's name) and
// `tessera.buffer_kind` ("input", "output" or "state"); a state result is
// written into the buffer of the state argument of the same name, so the
// cache stays on the device between programs (compiler/lowering).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace tessera {

/// `prefill` holds the raised @forward imported at [1, T], `decode` the one
/// imported at [1, 1]; both already LoRA-injected with the same options. On
/// success `prefill` holds @prefill and @decode (and no @forward).
mlir::LogicalResult buildInference(mlir::ModuleOp prefill, mlir::ModuleOp decode, std::string &error);

} // namespace tessera
