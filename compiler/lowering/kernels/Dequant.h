// Dequant.h - reading a block-quantised weight inside a kernel.
//
// A quantised weight's buffer is memref<words x i32>: its GGUF blocks
// (runtime/gguf/Quant.h) back to back, the last word zero-padded. Kernels
// read element (r, c) of the logical [R, C] weight by its logical flat index
// r * C + c: the block position is that index (blocks along axis 1), or
// c * R + r for a transposed weight (blocks along axis 0); the scale and the
// code are extracted from their words with shifts, the f16 scale widened
// exactly with integer arithmetic (no 16-bit types needed), and the value is
// code * scale in f32 - the same float product ggml's dequantisers compute.
// The matmul kernels call this while staging tiles: no dequantised copy of a
// weight ever exists in memory.
#pragma once

#include "compiler/lowering/kernels/KernelBuilder.h"
#include "compiler/precision/Quantized.h"

namespace tessera::lowering {

/// memref<ceil(bytes / 4) x i32> of a quantised weight.
mlir::MemRefType quantMemRefType(mlir::MLIRContext *ctx, const quant::QuantizedWeight &q);
/// The f32 value of logical element `i` (index) of the weight in `mem`.
Value loadDequantized(KernelBuilder &kb, Value mem, const quant::QuantizedWeight &q, Value i);
/// Whether runs of `n` consecutive elements along a row lie inside one block
/// (n = 4, 8 or 16, blocks along axis 1): what loadDequantizedRun reads.
bool dequantRunFits(const quant::QuantizedWeight &q, int64_t n);
/// The f32 values of logical elements i .. i + n - 1 (i a multiple of n) of a
/// weight for which dequantRunFits(q, n): one scale and n code bytes, read as
/// n / 4 + 1 words, instead of two word loads and a scale per element. The
/// values equal loadDequantized's.
llvm::SmallVector<Value> loadDequantizedRun(KernelBuilder &kb, Value mem, const quant::QuantizedWeight &q, Value i,
                                            int64_t n);
/// Ternary codes (TQ2_0 blocks of scale 1, BitNet's `tessera.ternary =
/// "codes"`, blocks along axis 1) i .. i + 3 (i a multiple of 4) as four
/// signed bytes of one i32 word, byte j = code i + j in {-1, 0, 1}: the packed
/// int8 operand of an integer dot product. The block scale is not read (the
/// runtime writes 1).
Value loadTernaryCodes4(KernelBuilder &kb, Value mem, const quant::QuantizedWeight &q, Value i);
/// "q8_0" or "q8_0^T" (transposed), for kernel keys.
std::string quantKey(const quant::QuantizedWeight &q);

} // namespace tessera::lowering
