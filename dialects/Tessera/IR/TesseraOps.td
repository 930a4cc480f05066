//===- TesseraOps.td - Tessera operations -----------------*- tablegen -*-===//
#ifndef TESSERA_OPS_TD
#define TESSERA_OPS_TD

include "TesseraDialect.td"
include "TesseraKernelConfigs.td"
include "TesseraInterfaces.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

// Float tensors hold f32, f16 or bf16: the element type is the value's
// storage precision (tessera-assign-precision); kernels compute in f32.
def Tessera_FloatTensor : StaticShapeTensorOf<[F32, F16, BF16]>;
def Tessera_IndexTensor : StaticShapeTensorOf<[I32]>;
def Tessera_AnyTensor : StaticShapeTensorOf<[F32, F16, BF16, I32, I1]>;

// Result types inferred from the operands and attributes (TesseraTypeInference.cpp):
// the builders take no result type, and element types come from the operands.
// (Ops whose result type a trait fixes, AllTypesMatch, declare
// InferTypeOpInterface instead: ODS writes the rule; unary, softmax and
// dropout, whose result may be stored in another precision, have a builder
// defaulting to the input's type.) A given result shape is checked by the
// op's verifier against the same inference, which names what differs; the
// interface's generic mismatch report is therefore turned off, and element
// types, the values' storage precision, are left to tessera-assign-precision.
def Tessera_InferResultTypes : InferTypeOpAdaptorBase<[{
  static ::llvm::LogicalResult refineReturnTypes(
      ::mlir::MLIRContext *, std::optional<::mlir::Location>, ::mlir::ValueRange,
      ::mlir::DictionaryAttr, ::mlir::OpaqueProperties, ::mlir::RegionRange,
      ::llvm::SmallVectorImpl<::mlir::Type> &) {
    return ::mlir::success();
  }
}]>;

//===----------------------------------------------------------------------===//
// Tensor level: leaves
//===----------------------------------------------------------------------===//

def Tessera_ParamOp : Tessera_Op<"param", [Pure]> {
  let summary = "a named model parameter (frozen weight or LoRA factor)";
  let description = [{
    Frozen parameters name an initializer of the model file; the runtime reads
    them from that file at train time. LoRA parameters are named by the
    structural name of the linear layer plus `.lora_A` / `.lora_B`.
    Example: `%w = tessera.param frozen "model.layers.0.self_attn.q_proj.weight" : tensor<64x64xf32>`

    `rows = [begin, end]` makes a frozen parameter a tile: rows begin..end-1
    of the initializer (tessera-split-large-tensors splits a weight larger
    than the device's buffer limit into such tiles; the runtime loads only
    those rows).
  }];
  let arguments = (ins Tessera_ParamKindAttr:$kind, StrAttr:$name,
                       OptionalAttr<DenseI64ArrayAttr>:$rows);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$kind $name attr-dict `:` type($result)";
  let builders = [OpBuilder<(ins "::mlir::Type":$result, "ParamKind":$kind, "::llvm::StringRef":$name), [{
    build($_builder, $_state, result, kind, name, ::mlir::DenseI64ArrayAttr());
  }]>];
  let hasVerifier = 1;
}

def Tessera_ConstantOp : Tessera_Op<"constant", [ConstantLike, Pure, AllTypesMatch<["value", "result"]>]> {
  let summary = "a constant tensor baked into the plan";
  let arguments = (ins ElementsAttr:$value);
  let results = (outs Tessera_AnyTensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Tensor level: elementwise (numpy broadcasting)
//===----------------------------------------------------------------------===//

def Tessera_UnaryOp : Tessera_Op<"unary", [Pure, SameOperandsAndResultShape, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "elementwise function of one tensor";
  let arguments = (ins Tessera_UnaryFnAttr:$fn, Tessera_FloatTensor:$input);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$fn $input attr-dict `:` custom<StorageTypes>(type($input), type($result))";
  let builders = [OpBuilder<(ins "UnaryFn":$fn, "Value":$input), [{
    build($_builder, $_state, input.getType(), fn, input);
  }]>];
  let hasCanonicalizer = 1;
}

def Tessera_BinaryOp : Tessera_Op<"binary", [Pure, Tessera_InferResultTypes, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "elementwise function of two tensors with numpy broadcasting";
  let arguments = (ins Tessera_BinaryFnAttr:$fn, Tessera_FloatTensor:$lhs,
                       Tessera_FloatTensor:$rhs);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$fn $lhs `,` $rhs attr-dict `:` `(` type($lhs) `,` type($rhs) `)` `->` type($result)";
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

def Tessera_SelectOp : Tessera_Op<"select", [Pure, Tessera_InferResultTypes, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "cond ? lhs : rhs, elementwise with numpy broadcasting";
  let arguments = (ins StaticShapeTensorOf<[I1]>:$cond, Tessera_FloatTensor:$lhs,
                       Tessera_FloatTensor:$rhs);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$cond `,` $lhs `,` $rhs attr-dict `:` `(` type($cond) `,` type($lhs) `,` type($rhs) `)` `->` type($result)";
  let hasVerifier = 1;
}

def Tessera_CastOp : Tessera_Op<"cast", [Pure, SameOperandsAndResultShape, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "element type conversion (f32, f16, bf16, i32, i1)";
  let arguments = (ins Tessera_AnyTensor:$input);
  let results = (outs Tessera_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasFolder = 1;
}

def Tessera_FusedElementwiseOp : Tessera_Op<"fused_elementwise", [Pure, SingleBlock]> {
  let summary = "a tree of elementwise ops evaluated as one kernel (tessera-fuse-elementwise)";
  let description = [{
    The body computes one element of each result from one element of each
    input: its block arguments are 0-d tensors of the inputs' element types,
    its ops unary, binary, select and cast over 0-d tensors, and `yield`
    returns one element per result. The results share one shape; each input
    is read through the numpy broadcast of its shape to it (the inputs of the
    original ops, and the inputs of broadcast ops folded in). The first
    result is the tree's root; further results are intermediates that other
    ops also read (they are stored anyway; the fused kernel writes them).

    Element types inside the body are storage precisions, as they were in
    the unfused graph: the kernel evaluates every op in f32 and rounds a
    value whose type is f16 or bf16 to that type, exactly where the unfused
    plan stored it, so fusion changes no result bit (docs/design.md,
    "Fusion").
    Example:
      %r = tessera.fused_elementwise ins(%a, %b : tensor<4x8xbf16>, tensor<8xf32>) {
      ^bb0(%x: tensor<bf16>, %y: tensor<f32>):
        %s = tessera.unary silu %x : tensor<bf16>
        %m = tessera.binary mul %s, %y : (tensor<bf16>, tensor<f32>) -> tensor<bf16>
        tessera.yield %m : tensor<bf16>
      } : tensor<4x8xbf16>
  }];
  let arguments = (ins Variadic<Tessera_AnyTensor>:$inputs);
  let results = (outs Variadic<Tessera_FloatTensor>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = "(`ins` `(` $inputs^ `:` type($inputs) `)`)? $body attr-dict `:` type($results)";
  let skipDefaultBuilders = 1;
  let builders = [OpBuilder<(ins "::mlir::TypeRange":$results, "::mlir::ValueRange":$inputs)>];
  let extraClassDeclaration = [{
    /// The values the body yields, one per result.
    ::mlir::OperandRange getYielded();
    /// What determines the kernel's code besides the types: the body's ops,
    /// their operands and storage types, and what is yielded, e.g.
    /// "binary<mul>(a0,a1):bf16;unary<silu>(v0):bf16;yield(v1)" (kernel and
    /// problem keys).
    std::string bodySignature();
  }];
  let hasVerifier = 1;
}

def Tessera_YieldOp : Tessera_Op<"yield", [Pure, Terminator, HasParent<"FusedElementwiseOp">]> {
  let summary = "the elements a fused_elementwise body computes, one per result";
  let arguments = (ins Variadic<Tessera_FloatTensor>:$values);
  let assemblyFormat = "$values attr-dict `:` type($values)";
}

//===----------------------------------------------------------------------===//
// Tensor level: contractions and reductions
//===----------------------------------------------------------------------===//

def Tessera_MatmulOp : Tessera_Op<"matmul", [Pure, Tessera_InferResultTypes, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "batched matrix product with numpy broadcasting of batch dims";
  let description = [{
    lhs [..., M, K] (or [..., K, M] when transpose_lhs), rhs [..., K, N] (or
    [..., N, K] when transpose_rhs). Rank-2 rhs against a rank-3 lhs is the
    linear layer.
  }];
  let arguments = (ins Tessera_FloatTensor:$lhs, Tessera_FloatTensor:$rhs,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_lhs,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_rhs);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` `(` type($lhs) `,` type($rhs) `)` `->` type($result)";
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

def Tessera_FusedMatmulOp : Tessera_Op<"fused_matmul", [Pure]> {
  let summary = "alpha * matmul(lhs, rhs) + addend in one kernel (tessera-fuse-matmul-epilogue)";
  let description = [{
    A tessera.matmul (same operands, transposes and batch broadcasting) with
    an epilogue: the f32 accumulator is scaled by `alpha` and, when present,
    `addend` (a tensor of the result's shape, any float storage type) is
    added before the single rounding to the result's storage type. It
    replaces `add(mul(matmul, constant), addend)` chains whose intermediates
    have no other use, e.g. the LoRA up product plus the base output:
      %y = tessera.fused_matmul %xs, %B plus %base {alpha = 1.0 : f64, transpose_rhs = true}
             : (tensor<64x16xf32>, tensor<256x16xf32>), tensor<64x256xbf16> -> tensor<64x256xbf16>
    Only created after autodiff (it has no gradient).
  }];
  let arguments = (ins Tessera_FloatTensor:$lhs, Tessera_FloatTensor:$rhs,
                       Optional<Tessera_FloatTensor>:$addend,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_lhs,
                       DefaultValuedAttr<BoolAttr, "false">:$transpose_rhs,
                       DefaultValuedAttr<F64Attr, "1.0">:$alpha);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs (`plus` $addend^)? attr-dict `:` `(` type($lhs) `,` type($rhs) `)` "
                       "(`,` type($addend)^)? `->` type($result)";
  let hasVerifier = 1;
}

def Tessera_ReduceOp : Tessera_Op<"reduce", [Pure, Tessera_InferResultTypes, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "sum, mean or max over the given axes";
  let arguments = (ins Tessera_ReduceFnAttr:$fn, Tessera_FloatTensor:$input,
                       DenseI64ArrayAttr:$axes,
                       DefaultValuedAttr<BoolAttr, "false">:$keepdims);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$fn $input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Tessera_SoftmaxOp : Tessera_Op<"softmax", [Pure, SameOperandsAndResultShape, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "softmax over the last axis";
  let arguments = (ins Tessera_FloatTensor:$input);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` custom<StorageTypes>(type($input), type($result))";
  let builders = [OpBuilder<(ins "Value":$input), [{
    build($_builder, $_state, input.getType(), input);
  }]>];
}

def Tessera_DropoutOp : Tessera_Op<"dropout", [Pure, SameOperandsAndResultShape, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "inverted dropout with a counter-based mask (LoRA dropout)";
  let description = [{
    In a training program (one with hparams) element i of the flattened
    input is kept, times 1 / (1 - rate), when
      h_i = fmix32(i * 0x9E3779B9 + fmix32(seed * 0x9E3779B9 ^ site)) >= rate * 2^32
    and zeroed otherwise; `seed` is hparams[10] (the runtime writes a new one
    for every micro-batch) and fmix32 is MurmurHash3's 32-bit finaliser
    (docs/training.md). Outside training (the eval program) it is the
    identity. The mask depends on nothing but (seed, site, i), so the
    gradient is the same op applied to the incoming gradient, and a
    recomputed forward reproduces it.
  }];
  let arguments = (ins Tessera_FloatTensor:$input, F64Attr:$rate, I64Attr:$site);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` custom<StorageTypes>(type($input), type($result))";
  let builders = [OpBuilder<(ins "Value":$input, "::mlir::FloatAttr":$rate, "::mlir::IntegerAttr":$site), [{
    build($_builder, $_state, input.getType(), input, rate, site);
  }]>];
  let hasVerifier = 1;
}

def Tessera_ActQuantOp : Tessera_Op<"act_quant", [Pure, SameOperandsAndResultType, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "per-row absmax int8 fake quantisation (BitNet b1.58 activations)";
  let description = [{
    For each row r of the last axis, in f32:
      a_r = (1 / max(max_j |x_rj|, eps)) * 127
      y_rj = clamp(round_even(x_rj * a_r), -128, 127) / a_r
    which is transformers' BitNet `ActQuant` (AutoBitLinear, online mode) as
    its export computes it (the reciprocal times 127, then a division). The
    gradient is the straight-through estimator: the identity.
  }];
  let arguments = (ins Tessera_FloatTensor:$input, DefaultValuedAttr<F64Attr, "1e-5">:$eps);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
  let builders = [OpBuilder<(ins "Value":$input, "double":$eps), [{
    build($_builder, $_state, input.getType(), input, $_builder.getF64FloatAttr(eps));
  }]>];
  let hasVerifier = 1;
}

def Tessera_BitLinearMatmulOp : Tessera_Op<"bitlinear_matmul", [Pure]> {
  let summary = "BitNet b1.58 product in integers: act_quant codes x ternary codes, scaled (tessera-integer-bitlinear)";
  let description = [{
    matmul(act_quant(input), codes, transpose_rhs = true) * scale with the
    product taken over the integer codes: for each row r of input [..., M, K],
      a_r = (1 / max(max_k |x_rk|, eps)) * 127        (act_quant's, in f32)
      q_rk = clamp(round_even(x_rk * a_r), -128, 127)  (int8)
      y_rn = (float(sum_k q_rk * c_nk) / a_r) * scale  (the sum exact, int32)
    where codes [N, K] holds ternary values c in {-1, 0, 1} (a BitLinear's
    `tessera.ternary = "codes"` param) and scale is its rank-0 weight scale.
    It equals the f32 chain up to f32 summation order (the integer sum has
    none). Made after autodiff, for the forward only: the straight-through
    gradient stays on the ops it replaced. K must be a multiple of 4 (codes
    are packed four to a 32-bit word).
  }];
  let arguments = (ins Tessera_FloatTensor:$input, Tessera_FloatTensor:$codes, Tessera_FloatTensor:$scale,
                       DefaultValuedAttr<F64Attr, "1e-5">:$eps);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$input `,` $codes `,` $scale attr-dict `:` `(` type($input) `,` type($codes) `,` type($scale) `)` `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Tensor level: data movement
//===----------------------------------------------------------------------===//

def Tessera_TransposeOp : Tessera_Op<"transpose", [Pure, Tessera_InferResultTypes, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "permutation of dimensions: result dim i = input dim perm[i]";
  let arguments = (ins Tessera_AnyTensor:$input, DenseI64ArrayAttr:$perm);
  let results = (outs Tessera_AnyTensor:$result);
  let assemblyFormat = "$input $perm attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Tessera_ReshapeOp : Tessera_Op<"reshape", [Pure, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "same elements, row-major, new static shape";
  let arguments = (ins Tessera_AnyTensor:$input);
  let results = (outs Tessera_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Tessera_BroadcastOp : Tessera_Op<"broadcast", [Pure, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "numpy broadcast to the result shape (ONNX Expand)";
  let arguments = (ins Tessera_AnyTensor:$input);
  let results = (outs Tessera_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Tessera_SliceOp : Tessera_Op<"slice", [Pure, Tessera_InferResultTypes, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "strided slice: for each dim, start, limit (exclusive), stride >= 1";
  let arguments = (ins Tessera_AnyTensor:$input, DenseI64ArrayAttr:$starts,
                       DenseI64ArrayAttr:$limits, DenseI64ArrayAttr:$strides);
  let results = (outs Tessera_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Tessera_PadOp : Tessera_Op<"pad", [Pure, Tessera_InferResultTypes, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "zero padding: low/high edges and interior gaps per dim (gradient of slice)";
  let arguments = (ins Tessera_FloatTensor:$input, DenseI64ArrayAttr:$low,
                       DenseI64ArrayAttr:$high, DenseI64ArrayAttr:$interior);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Tessera_ConcatOp : Tessera_Op<"concat", [Pure, Tessera_InferResultTypes, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "concatenation along one axis";
  let arguments = (ins Variadic<Tessera_AnyTensor>:$inputs, I64Attr:$axis);
  let results = (outs Tessera_AnyTensor:$result);
  let assemblyFormat = "$inputs attr-dict `:` functional-type($inputs, $result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Tessera_GatherOp : Tessera_Op<"gather", [Pure, Tessera_InferResultTypes, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "ONNX Gather: result = input.shape[:axis] + indices.shape + input.shape[axis+1:]";
  let description = [{
    Negative indices count from the end; out-of-range ones are clamped.
    `tile = [offset, rows]` (axis 0 only): the input holds rows offset.. of a
    table of `rows` rows; each index is resolved against that table, and one
    outside the tile gathers zeros (the per-tile gathers of a split
    embedding, summed, give the whole table's gather).
  }];
  let arguments = (ins Tessera_FloatTensor:$input, Tessera_IndexTensor:$indices,
                       DefaultValuedAttr<I64Attr, "0">:$axis,
                       OptionalAttr<DenseI64ArrayAttr>:$tile);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$input `[` $indices `]` attr-dict `:` `(` type($input) `,` type($indices) `)` `->` type($result)";
  let builders = [
    OpBuilder<(ins "::mlir::Value":$input, "::mlir::Value":$indices, "int64_t":$axis), [{
      build($_builder, $_state, input, indices, $_builder.getI64IntegerAttr(axis), ::mlir::DenseI64ArrayAttr());
    }]>,
    OpBuilder<(ins "::mlir::Type":$result, "::mlir::Value":$input, "::mlir::Value":$indices, "int64_t":$axis), [{
      build($_builder, $_state, result, input, indices, $_builder.getI64IntegerAttr(axis), ::mlir::DenseI64ArrayAttr());
    }]>];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Tensor level: raised ops (compiler/raise)
//
// High-level ops that tessera-raise recognises in imported graphs (decoder
// layers of Llama / Qwen / Gemma exports) and tessera-decompose-fused expands
// back into the generic core above, which autodiff and lowering know.
//===----------------------------------------------------------------------===//

def Tessera_RMSNormOp : Tessera_Op<"rms_norm", [Pure, AllTypesMatch<["input", "result"]>, DeclareOpInterfaceMethods<InferTypeOpInterface>]> {
  let summary = "RMSNorm over the last axis: x * rsqrt(mean(x*x) + eps) * (weight + weight_offset)";
  let description = [{
    `weight` has the size of the input's last axis. `weight_offset` is 1 for a
    Gemma-style (1 + w) norm whose offset the export did not fold into the
    weight, otherwise 0.
  }];
  let arguments = (ins Tessera_FloatTensor:$input, Tessera_FloatTensor:$weight, F64Attr:$eps,
                       DefaultValuedAttr<F64Attr, "0.0">:$weight_offset);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$input `,` $weight attr-dict `:` `(` type($input) `,` type($weight) `)` `->` type($result)";
  let hasVerifier = 1;
}

def Tessera_RopeOp : Tessera_Op<"rope", [Pure, Tessera_InferResultTypes, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "rotary position embedding, rotate-half form: x * cos + rotate_half(x) * sin";
  let description = [{
    input [..., T, D] (D even), cos and sin broadcastable to it.
    rotate_half(x) = concat(-x[..., D/2:], x[..., :D/2]).
    With `transposed`, the adjoint: x * cos + rotate_half^T(x * sin), where
    rotate_half^T(z) = concat(z[..., D/2:], -z[..., :D/2]) — the gradient of
    the untransposed op with respect to its input, so RoPE stays one kernel
    in the backward too. The result has the input's shape; its element type
    is where it is stored (tessera-assign-precision).

    `input_permutation` and `result_permutation` (set by
    tessera-fold-rope-transposes, after autodiff) are transposes folded into
    the kernel's addressing: the op computes
    transpose(rope(transpose(input, input_permutation)), result_permutation),
    so a [B, T, H, D] projection is rotated straight into the [B, H, T, D]
    attention layout and back. Both keep the last (rotated) dim in place;
    the tables broadcast to the rotated shape.
  }];
  let arguments = (ins Tessera_FloatTensor:$input, Tessera_FloatTensor:$cos,
                       Tessera_FloatTensor:$sin, UnitAttr:$transposed,
                       OptionalAttr<DenseI64ArrayAttr>:$input_permutation,
                       OptionalAttr<DenseI64ArrayAttr>:$result_permutation);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$input `,` $cos `,` $sin attr-dict `:` `(` type($input) `,` type($cos) `,` type($sin) `)` `->` type($result)";
  let hasVerifier = 1;
}

def Tessera_AttentionOp : Tessera_Op<"attention", [Pure, Tessera_InferResultTypes]> {
  let summary = "scaled dot-product attention with grouped key/value heads and an additive mask";
  let description = [{
    q [B, H, T, D], k and v [B, H / kv_groups, S, D], optional mask (f32,
    added to the scores, broadcastable to [B, H, T, S]). Each key/value head
    serves kv_groups consecutive query heads (Hugging Face repeat_kv).
    result = softmax(q k^T * scale + mask) v, [B, H, T, D].
  }];
  let arguments = (ins Tessera_FloatTensor:$query, Tessera_FloatTensor:$key,
                       Tessera_FloatTensor:$value, Optional<Tessera_FloatTensor>:$mask,
                       F64Attr:$scale, I64Attr:$kv_groups);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$query `,` $key `,` $value (`mask` $mask^)? attr-dict `:` `(` type($query) `,` type($key) `,` type($value) (`,` type($mask)^)? `)` `->` type($result)";
  let hasVerifier = 1;
}

def Tessera_FlashAttentionOp : Tessera_Op<"flash_attention", [Pure, Tessera_InferResultTypes, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "attention that also returns the row log-sum-exp (kept fused through autodiff)";
  let description = [{
    The operands and attributes of `tessera.attention` (q [B, H, T, D], k and
    v [B, H / kv_groups, S, D], optional f32 mask broadcastable to
    [B, H, T, S]). result = softmax(q k^T * scale + mask) v, and
    lse [B, H, T] (f32) = log(sum_s exp(q k^T * scale + mask)), +inf for a
    row whose keys are all masked (-inf), whose result is 0. The kernel never
    stores the [T, S] scores (online softmax); the gradient is one
    `flash_attention_grad` that recomputes them from lse. Only the result is
    differentiated (lse feeds the backward alone). Made by
    tessera-fuse-attention.
  }];
  let arguments = (ins Tessera_FloatTensor:$query, Tessera_FloatTensor:$key,
                       Tessera_FloatTensor:$value, Optional<Tessera_FloatTensor>:$mask,
                       F64Attr:$scale, I64Attr:$kv_groups);
  let results = (outs Tessera_FloatTensor:$result, Tessera_FloatTensor:$lse);
  let assemblyFormat = "$query `,` $key `,` $value (`mask` $mask^)? attr-dict `:` `(` type($query) `,` type($key) `,` type($value) (`,` type($mask)^)? `)` `->` `(` type($result) `,` type($lse) `)`";
  let hasVerifier = 1;
}

def Tessera_FlashAttentionGradOp : Tessera_Op<"flash_attention_grad", [Pure, Tessera_InferResultTypes]> {
  let summary = "dq, dk, dv of a flash_attention from its result, lse and the result's gradient";
  let description = [{
    FlashAttention-2's backward: D = rowsum(dout * out), P = exp(q k^T * scale
    + mask - lse) recomputed, dv = P^T dout, dP = dout v^T, dS = P * (dP - D),
    dq = dS k * scale, dk = dS^T q * scale; the gradients of a key/value head
    sum over the kv_groups query heads it serves. Shapes as flash_attention;
    dquery, dkey, dvalue have the shapes of query, key, value.
  }];
  let arguments = (ins Tessera_FloatTensor:$query, Tessera_FloatTensor:$key,
                       Tessera_FloatTensor:$value, Tessera_FloatTensor:$out,
                       Tessera_FloatTensor:$lse, Tessera_FloatTensor:$dout,
                       Optional<Tessera_FloatTensor>:$mask, F64Attr:$scale, I64Attr:$kv_groups);
  let results = (outs Tessera_FloatTensor:$dquery, Tessera_FloatTensor:$dkey, Tessera_FloatTensor:$dvalue);
  let assemblyFormat = "$query `,` $key `,` $value `,` $out `,` $lse `,` $dout (`mask` $mask^)? attr-dict `:` `(` type($query) `,` type($key) `,` type($value) `,` type($out) `,` type($lse) `,` type($dout) (`,` type($mask)^)? `)` `->` `(` type($dquery) `,` type($dkey) `,` type($dvalue) `)`";
  let hasVerifier = 1;
}

def Tessera_GluActivation : I32EnumAttr<"GluActivation", "activation of a gated linear unit", [
    I32EnumAttrCase<"silu", 0>, I32EnumAttrCase<"gelu_tanh", 1>,
    I32EnumAttrCase<"relu2", 2>  // relu(x)^2 (BitNet b1.58)
  ]> {
  let cppNamespace = "::mlir::tessera";
  let genSpecializedAttr = 0;
}
def Tessera_GluActivationAttr : EnumAttr<Tessera_Dialect, Tessera_GluActivation, "glu_activation"> {
  let assemblyFormat = "$value";
}

def Tessera_GluOp : Tessera_Op<"glu", [Pure, AllTypesMatch<["gate", "up", "result"]>, DeclareOpInterfaceMethods<InferTypeOpInterface>]> {
  let summary = "gated linear unit: act(gate) * up (SwiGLU with silu, GeGLU with gelu_tanh, BitNet's relu2)";
  let arguments = (ins Tessera_GluActivationAttr:$act, Tessera_FloatTensor:$gate,
                       Tessera_FloatTensor:$up);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$act $gate `,` $up attr-dict `:` type($result)";
}

def Tessera_TernaryWeightOp : Tessera_Op<"ternary_weight", [Pure, SameOperandsAndResultType]> {
  let summary = "per-tensor absmean ternary fake quantisation of a frozen weight (BitNet b1.58)";
  let description = [{
    s = 1 / max(mean |w| over the whole tensor, eps);
    result = clamp(round_even(w * s), -1, 1) / s, all in f32: transformers'
    BitNet `WeightQuant` (AutoBitLinear, online mode). `weight` is a frozen
    rank-2 param (the linear's [out, in] weight); the result is frozen too,
    so the op has no gradient. tessera-decompose-fused expands it into the
    generic ops.
  }];
  let arguments = (ins Tessera_FloatTensor:$weight, DefaultValuedAttr<F64Attr, "1e-5">:$eps);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$weight attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Tessera_EmbeddingOp : Tessera_Op<"embedding", [Pure, Tessera_InferResultTypes]> {
  let summary = "token embedding lookup: table[ids] * scale";
  let description = [{
    table [V, N], ids [B, T] -> [B, T, N]. `scale` is Gemma's sqrt(hidden)
    embedding scale (1 elsewhere).
  }];
  let arguments = (ins Tessera_FloatTensor:$table, Tessera_IndexTensor:$ids,
                       DefaultValuedAttr<F64Attr, "1.0">:$scale);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$table `[` $ids `]` attr-dict `:` `(` type($table) `,` type($ids) `)` `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Tensor level: training
//===----------------------------------------------------------------------===//

def Tessera_CrossEntropyOp : Tessera_Op<"cross_entropy", [Pure, Tessera_InferResultTypes, DeclareOpInterfaceMethods<Tessera_GradientOpInterface>]> {
  let summary = "mean next-token cross-entropy over counted tokens";
  let description = [{
    logits [B, T, V], labels [B, T]. With `shift` (Hugging Face causal-LM
    convention) position t predicts labels[t + 1]. Labels equal to
    `ignore_index` do not count. Result: scalar mean over counted tokens (0 when
    none count).
  }];
  let arguments = (ins Tessera_FloatTensor:$logits, Tessera_IndexTensor:$labels,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                       DefaultValuedAttr<BoolAttr, "true">:$shift);
  let results = (outs 0DTensorOf<[F32]>:$loss);
  let assemblyFormat = "$logits `,` $labels attr-dict `:` `(` type($logits) `,` type($labels) `)` `->` type($loss)";
  let hasVerifier = 1;
}

def Tessera_CrossEntropyGradOp : Tessera_Op<"cross_entropy_grad", [Pure, Tessera_InferResultTypes]> {
  let summary = "gradient of cross_entropy with respect to the logits, scaled by dloss";
  let arguments = (ins Tessera_FloatTensor:$logits, Tessera_IndexTensor:$labels,
                       0DTensorOf<[F32]>:$dloss,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                       DefaultValuedAttr<BoolAttr, "true">:$shift);
  let results = (outs Tessera_FloatTensor:$result);
  let assemblyFormat = "$logits `,` $labels `,` $dloss attr-dict `:` `(` type($logits) `,` type($labels) `,` type($dloss) `)` `->` type($result)";
  let hasVerifier = 1;
}

def Tessera_AdamWUpdateOp : Tessera_Op<"adamw_update", [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "AdamW step of one trainable parameter, in place, with its moments";
  let description = [{
    Updates the LoRA parameter named `param` and its first/second moments from
    `grad`. `hparams` is the per-step scalar vector written by the runtime:
    [lr, beta1, beta2, eps, weight_decay, 1 - beta1^t, 1 - beta2^t, t].
  }];
  let arguments = (ins StrAttr:$param, Tessera_FloatTensor:$grad,
                       StaticShapeTensorOf<[F32]>:$hparams);
  let assemblyFormat = "$param `,` $grad `,` $hparams attr-dict `:` type($grad) `,` type($hparams)";
}

//===----------------------------------------------------------------------===//
// Execution level: what lowering produces and the plan serialises
//===----------------------------------------------------------------------===//

def Tessera_BufferOp : Tessera_Op<"buffer", [Symbol, DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "a device buffer of the plan";
  let description = [{
    `type` is the flat memref the kernels bind (memref<N x f32|i32>). `name`
    is the model initializer (weight), LoRA parameter, or value it holds;
    `shape` its logical shape; `init` the data of a constant buffer;
    `alias` another buffer whose storage this one shares (reshape);
    `row_offset` the first initializer row a weight tile holds.
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, Tessera_BufferKindAttr:$kind,
                       TypeAttr:$type, OptionalAttr<StrAttr>:$name,
                       OptionalAttr<DenseI64ArrayAttr>:$shape,
                       OptionalAttr<ElementsAttr>:$init,
                       OptionalAttr<FlatSymbolRefAttr>:$alias,
                       OptionalAttr<I64Attr>:$row_offset);
  let assemblyFormat = "$kind $sym_name `:` $type attr-dict";
  let hasVerifier = 1;
}

def Tessera_ProgramOp : Tessera_Op<"program", [Symbol, NoTerminator, SingleBlock]> {
  let summary = "an ordered sequence of dispatches the runtime replays (train_step, eval)";
  let arguments = (ins SymbolNameAttr:$sym_name);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = "$sym_name attr-dict-with-keyword $body";
}

def Tessera_DispatchOp : Tessera_Op<"dispatch", [HasParent<"ProgramOp">,
                                                DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "one compute dispatch: kernel, buffers bound in order, workgroup counts";
  let arguments = (ins SymbolRefAttr:$kernel, SymbolRefArrayAttr:$buffers,
                       DenseI64ArrayAttr:$workgroups);
  let assemblyFormat = "$kernel $buffers `workgroups` $workgroups attr-dict";
  let hasVerifier = 1;
}

#endif // TESSERA_OPS_TD
