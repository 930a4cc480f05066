// Abi.h - the indices compiler and runtime agree on outside the plan
// manifest: the hparams buffer the runtime writes before every step and the
// grad_norm buffer it reads back. Plain C++ (no MLIR, no Vulkan), included by
// the kernel generators and the trainer; docs/training.md explains each slot.
#pragma once

#include <cstdint>

namespace tessera::plan {

// Layout of the HParams buffer (f32 each), written by the runtime before every step.
enum HParam : uint32_t {
  kLearningRate = 0,
  kBeta1 = 1,
  kBeta2 = 2,
  kEpsilon = 3,
  kWeightDecay = 4,
  kBiasCorrection1 = 5, // 1 - beta1^t
  kBiasCorrection2 = 6, // 1 - beta2^t
  kStep = 7,            // t, 1-based
  kMinHParams = 8,      // plans without clipping/accumulation have these alone
  kMaxGradNorm = 8,     // clip the global gradient norm to this (<= 0: no clipping)
  kGradScale = 9,       // each micro-batch gradient is accumulated times this (1/K)
  kNumHParams = 10,
  kDropoutSeed = 10,    // plans with LoRA dropout: this micro-batch's mask seed (an integer < 2^24)
  kNumHParamsDropout = 11,
};

// The `grad_norm` output buffer of plans with an `optimizer_step` program:
// [0] running sum of squares (scratch, left at 0), [1] global norm of the
// accumulated gradient before clipping, [2] the clip coefficient applied.
enum GradNorm : uint32_t { kGradSumSquares = 0, kGradTotalNorm = 1, kGradClipCoef = 2, kGradNormSize = 3 };

} // namespace tessera::plan
