// KernelBuilder.h - building one gpu.func kernel from scf/arith/math/memref.
//
// Every kernel is a gpu.module holding one gpu.func of the same name. Its
// arguments are flat memrefs (memref<N x f32|f16|i16|i32>: bf16 is stored as
// i16 words since MLIR 19's SPIR-V dialect has no bf16 type, i1 as i32),
// bound at descriptor set 0, binding i = argument i. All shapes and strides
// are baked in as constants; the only runtime values are the builtin ids.
//
// Kernels compute in f32 whatever the storage precision: load() of a float
// buffer returns f32 (f16 and bf16 widened exactly), store() of an f32 into
// an f16 buffer rounds (the driver's conversion) after saturating to
// +-65504, so an overflow gives the largest half, not inf; into a bf16 buffer
// it rounds to nearest even (NaN stays NaN).
#pragma once

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <array>
#include <functional>

namespace tessera::lowering {

using mlir::Type;
using mlir::Value;

/// Storage element type of a tensor element type: f32 -> f32, f16 -> f16,
/// bf16 -> i16 (its bits), i32/i1 -> i32.
Type storageElementType(Type tensorElement);
/// Type of the values load() returns for a tensor element type: f32 for
/// every float type, i32 otherwise.
Type computeElementType(Type tensorElement);
/// Flat memref for a static tensor: memref<max(1, numel) x storage type>.
mlir::MemRefType flatMemRefType(mlir::ShapedType tensor);
/// Row-major strides of a shape.
llvm::SmallVector<int64_t> rowMajorStrides(llvm::ArrayRef<int64_t> shape);
int64_t numElements(llvm::ArrayRef<int64_t> shape);
inline int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// One dimension of an index map: the input offset of flat output index i is
/// sum over dims of ((i / outStride) % size) * inStride.
struct DimMap {
  int64_t size;
  int64_t outStride;
  int64_t inStride;
};

/// Output shape -> input offsets under numpy broadcasting of `in` (right
/// aligned, size-1 dims broadcast). Adjacent dims are merged where possible.
llvm::SmallVector<DimMap> broadcastIndexMap(llvm::ArrayRef<int64_t> out,
                                            llvm::ArrayRef<int64_t> in);
/// Merges adjacent dims and drops size-1 / zero-stride-only dims.
llvm::SmallVector<DimMap> simplifyIndexMap(llvm::ArrayRef<DimMap> dims);

class KernelBuilder {
public:
  /// Creates `gpu.module @name { gpu.func @name(args) kernel }` at the end of
  /// `module` with the given workgroup size; the builder is positioned in the
  /// function body (the gpu.return is added by finish()).
  KernelBuilder(mlir::ModuleOp module, llvm::StringRef name, llvm::ArrayRef<Type> args,
                std::array<int64_t, 3> localSize, mlir::Attribute targetEnv);

  mlir::ImplicitLocOpBuilder b;
  mlir::gpu::GPUModuleOp gpuModule;
  mlir::gpu::GPUFuncOp func;
  std::array<int64_t, 3> localSize;

  void finish();

  Value arg(unsigned i) { return func.getArgument(i); }

  // Constants.
  Value idx(int64_t v);
  Value f32(double v);
  Value i32(int64_t v);
  Value i1(bool v);

  // Builtin ids (index).
  Value threadId(mlir::gpu::Dimension d = mlir::gpu::Dimension::x);
  Value blockId(mlir::gpu::Dimension d = mlir::gpu::Dimension::x);

  // Index arithmetic (unsigned division: indices are never negative).
  Value add(Value a, Value c);
  Value sub(Value a, Value c);
  Value mul(Value a, Value c);
  Value udiv(Value a, Value c);
  Value urem(Value a, Value c);
  Value addi(Value a, int64_t c) { return c ? add(a, idx(c)) : a; }
  Value muli(Value a, int64_t c) { return c == 1 ? a : mul(a, idx(c)); }
  Value ult(Value a, Value c);
  Value ulti(Value a, int64_t c) { return ult(a, idx(c)); }
  Value andi(Value a, Value c);

  // Float arithmetic.
  Value fadd(Value a, Value c);
  Value fsub(Value a, Value c);
  Value fmul(Value a, Value c);
  Value fdiv(Value a, Value c);
  /// a / c correctly rounded (to nearest even) on every device: Vulkan lets
  /// OpFDiv be off by 2.5 ulp (NVIDIA's is), so where a kernel must round as
  /// torch does, the quotient of two normal numbers is computed by integer
  /// long division of the significands; other operands and quotients that are
  /// not normal numbers fall back to fdiv.
  Value fdivRounded(Value a, Value c);
  Value fma(Value a, Value c, Value d);
  Value fmax(Value a, Value c);
  Value select(Value cond, Value a, Value c);

  // Memory. Float buffers are read as f32 and written from f32 (header).
  Value load(Value mem, Value i);
  void store(Value v, Value mem, Value i);
  /// f32 <-> bf16 bits (i16), round to nearest even.
  Value bf16ToF32(Value bits);
  Value f32ToBf16(Value x);
  /// A workgroup-shared array (memref.alloc in workgroup memory space).
  Value sharedArray(int64_t n, Type elem);
  void barrier();

  // Structured control flow; the callbacks build with `b`.
  void forLoop(Value lb, Value ub, Value step, const std::function<void(Value)> &body);
  llvm::SmallVector<Value>
  forLoopIter(Value lb, Value ub, Value step, mlir::ValueRange init,
              const std::function<llvm::SmallVector<Value>(Value, mlir::ValueRange)> &body);
  void ifThen(Value cond, const std::function<void()> &then);
  Value ifElse(Value cond, Type type, const std::function<Value()> &then,
               const std::function<Value()> &otherwise);
  /// ifElse with several results (e.g. cooperative-matrix accumulators).
  llvm::SmallVector<Value> ifElseValues(Value cond, mlir::TypeRange types,
                                        const std::function<llvm::SmallVector<Value>()> &then,
                                        const std::function<llvm::SmallVector<Value>()> &otherwise);

  /// Input offset of flat index `i` under an index map.
  Value applyIndexMap(Value i, llvm::ArrayRef<DimMap> dims, int64_t outNumel);

  /// Thread i of `groups` workgroups of `wg` threads visits i, i + groups*wg, ... < n.
  void gridStrideLoop(int64_t n, int64_t wg, int64_t groups, const std::function<void(Value)> &body);

  /// Tree reduction of one f32 per thread over the workgroup (1-D, `wg` a
  /// power of two) through `shared` (memref<wg x f32, workgroup>); every
  /// thread gets the result. Must be reached by all threads of the workgroup.
  Value workgroupReduce(Value partial, Value shared, Value tid, int64_t wg,
                        const std::function<Value(Value, Value)> &combine);
};

/// Workgroups for a grid-stride loop over n items with wg threads each.
int64_t gridGroups(int64_t n, int64_t wg, int64_t maxGroups);

} // namespace tessera::lowering
