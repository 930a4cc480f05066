//===- Passes.td - Tessera passes, in pipeline order -----*- tablegen -*-===//
//
// Declarations only, and the one description of each pass (`tessera-opt
// --help` prints the summaries; the folders' READMEs and docs/ point here).
// Each pass is implemented in the compiler/ folder of its stage (raise, lora,
// training, autodiff, precision, memory, lowering, tuning); tessera-opt
// registers them all.
//
//===----------------------------------------------------------------------===//
#ifndef TESSERA_PASSES_TD
#define TESSERA_PASSES_TD

include "mlir/Pass/PassBase.td"

def TesseraRaise : Pass<"tessera-raise", "ModuleOp"> {
  let summary = "Recognise decoder layers in @forward: raise fused ops, name linear layers";
  let description = [{
    Implemented in compiler/raise (docs/raising.md). Raises RMSNorm, RoPE,
    grouped-query attention, SwiGLU/GeGLU and scaled embeddings into
    tessera.rms_norm / rope / attention / glu / embedding, walks the residual
    stream to recover the decoder layers, and marks every linear matmul with
    `tessera.module` (layers.N.self_attn.q_proj, ..., lm_head) and every op of
    layer N with `tessera.layer = N`. The module gets `tessera.arch`, the
    recognised architecture. What is not recognised stays generic.
  }];
}

def TesseraDecomposeFused : Pass<"tessera-decompose-fused", "ModuleOp"> {
  let summary = "Expand raised ops back into the generic core ops";
  let description = [{
    Autodiff and lowering know the generic core only. Decomposed ops keep the
    fused op's location and `tessera.layer`. With keep-rope, `tessera.rope`
    stays: its gradient is one `tessera.rope {transposed}` and either lowers
    to one elementwise kernel, where its expansion is five kernels forward
    (two slices, a negation, a concat and the multiply-adds) and more in the
    backward.
  }];
  let options = [
    Option<"keepRope", "keep-rope", "bool", /*default=*/"false",
           "leave tessera.rope for autodiff and the lowering">,
  ];
}

def TesseraFuseAttention : Pass<"tessera-fuse-attention", "ModuleOp"> {
  let summary = "Keep attention fused through autodiff: tessera.attention -> tessera.flash_attention";
  let description = [{
    Rewrites every `tessera.attention` into a `tessera.flash_attention` (same
    operands and attributes, plus the row log-sum-exp result), which
    tessera-decompose-fused leaves alone and whose gradient is one
    `flash_attention_grad`: the training step then never stores the
    [B, H, T, S] attention probabilities. Runs before
    tessera-decompose-fused; `tessera compile --no-fused-attention` leaves it
    out (the decomposition into matmul/softmax ops).
  }];
}

def TesseraInjectLoRA : Pass<"tessera-inject-lora", "ModuleOp"> {
  let summary = "Add LoRA adapters to the selected linear layers of @forward";
  let description = [{
    A linear layer is a tessera.matmul whose rhs is a frozen tessera.param
    (possibly through a transpose folded into transpose_rhs). Its structural
    name is the matmul's `tessera.module` (set by tessera-raise), else the
    parameter name without the leading "model." and trailing ".weight"
    (e.g. layers.0.self_attn.q_proj). Selected layers become
    y = x W + scale * (dropout(x) A^T) B^T with A [r, in] and B [out, r]
    (PEFT layout); the dropout op is only inserted when dropout > 0.
  }];
  let options = [
    Option<"targets", "targets", "std::string", /*default=*/"\"all-linear\"",
           "comma-separated suffixes of structural names (q_proj,v_proj) or all-linear">,
    Option<"rank", "rank", "int64_t", /*default=*/"8", "LoRA rank r">,
    Option<"alpha", "alpha", "double", /*default=*/"16.0", "LoRA alpha">,
    Option<"rslora", "rslora", "bool", /*default=*/"false", "scale alpha/sqrt(r) instead of alpha/r">,
    Option<"dropout", "dropout", "double", /*default=*/"0.0",
           "LoRA dropout on the adapter's input (PEFT's lora_dropout), in [0, 1)">,
    Option<"layers", "layers", "std::string", /*default=*/"\"\"",
           "decoder layers to adapt (PEFT's layers_to_transform): 0,2,5-7; empty: all">
  ];
}

def TesseraAppendLoss : Pass<"tessera-append-loss", "ModuleOp"> {
  let summary = "Build @loss(input_ids, labels) -> mean cross-entropy from @forward";
  let description = [{
    @loss (next to @forward, which stays) is a copy of @forward's body
    followed by tessera.cross_entropy of the logits and the labels with
    ignore_index = -100 and shift = true: Hugging Face's causal-LM loss
    (position t predicts labels[t + 1]; the mean is over counted tokens).
  }];
}

def TesseraAutodiff : Pass<"tessera-autodiff", "ModuleOp"> {
  let summary = "Reverse-mode differentiation of @loss for the LoRA parameters only";
  let description = [{
    Creates @loss_grad with the arguments of @loss, returning the loss and one
    gradient per LoRA parameter (result attribute tessera.grad_of = name).
    Frozen parameters receive no gradient and no gradient work.
  }];
}

def TesseraAddOptimizer : Pass<"tessera-add-optimizer", "ModuleOp"> {
  let summary = "Build @train_step from @loss_grad with one AdamW update per LoRA parameter";
  let description = [{
    @train_step(input_ids, labels, hparams) (next to @loss_grad, which stays)
    is @loss_grad's body, then one tessera.adamw_update per gradient result
    (named by its tessera.grad_of), returning the loss. hparams are what the
    runtime writes every step (runtime/plan/Abi.h: lr, betas, eps, weight
    decay, bias corrections, step, max_grad_norm, grad_scale, and with LoRA
    dropout the mask seed). Its tessera.role is accumulate: the lowering
    runs the updates in a separate optimizer_step program, after clipping
    by the global norm, so one optimizer step can span several micro-batches
    (docs/training.md).
  }];
}

//===----------------------------------------------------------------------===//
// Precision (compiler/precision, docs/design.md "Precision")
//===----------------------------------------------------------------------===//

def TesseraAssignPrecision : Pass<"tessera-assign-precision", "ModuleOp"> {
  let summary = "Choose the storage precision (f32 or the half type) of every tensor of the programs";
  let description = [{
    With precision=f16 or bf16, frozen weights, matmul and softmax results
    and the elementwise values between them are stored in the half type; the
    residual stream, reductions, the loss and everything the LoRA gradients
    and AdamW touch stay f32 (the rules are listed in
    compiler/precision/AssignPrecision.cpp). Kernels compute in f32 either
    way. fp32 leaves the module unchanged. With lora-products=half the f32
    LoRA factors are read by their products through one cast each to the
    half type (PyTorch autocast's rounding), so that those products run on
    half-precision kernels (tensor cores); their gradients stay f32.
  }];
  let options = [
    Option<"precision", "precision", "std::string", /*default=*/"\"fp32\"",
           "storage precision: fp32, f16 or bf16">,
    Option<"loraProducts", "lora-products", "std::string", /*default=*/"\"f32\"",
           "the LoRA factors inside their products: f32 (as stored) or half (rounded to the half type)">
  ];
}

def TesseraAssignQuant : Pass<"tessera-assign-quant", "ModuleOp"> {
  let summary = "Store the frozen linear weights block-quantised (Q8_0, Q4_0, TQ2_0)";
  let description = [{
    Marks each frozen 2-D weight read only by matmuls, one of them a linear
    layer (tessera.module), with tessera.quant = its GGUF block type and,
    when the layer's reduction axis is axis 0 (an ONNX MatMul's [in, out]
    weight), tessera.quant_transposed (compiler/precision/Quantized.h).
    base-dtype applies to every linear layer but lm_head; `overrides`
    ("lm_head=q8_0,down_proj=fp32") sets the type of the layers whose
    structural name ends with or equals the pattern (the last matching entry
    wins). A layer whose rows are not whole blocks, or whose weight is also
    read otherwise (a tied embedding), keeps the storage precision, with a
    remark naming it. Runs after tessera-assign-precision.
  }];
  let options = [
    Option<"baseDtype", "base-dtype", "std::string", /*default=*/"\"\"",
           "q8_0, q4_0, tq2_0, or empty / the precision: not quantised">,
    Option<"overrides", "overrides", "std::string", /*default=*/"\"\"",
           "per-layer types: pattern=type, comma-separated">,
    Option<"precision", "precision", "std::string", /*default=*/"\"fp32\"",
           "the plan's storage precision (what 'not quantised' means)">
  ];
}

//===----------------------------------------------------------------------===//
// Lowering (compiler/lowering)
//===----------------------------------------------------------------------===//

def TesseraIntegerBitLinear : Pass<"tessera-integer-bitlinear", "ModuleOp"> {
  let summary = "Compute BitNet b1.58 forward products over int8 activation codes and ternary codes (tessera.bitlinear_matmul)";
  let description = [{
    Runs after autodiff and tessera-assign-quant, before
    tessera-fuse-matmul-epilogue. The forward chain of a BitLinear,
      mul(matmul(act_quant(x), codes {transpose_rhs}), scale)
    where codes is a frozen `tessera.ternary = "codes"` param stored as
    TQ2_0 blocks along K and scale its `"scale"` param, becomes one
    tessera.bitlinear_matmul: the activation codes and the ternary codes
    are multiplied in exact int32 sums (packed int8 dot products where the
    module's target has them, tessera-select-kernel-configs; an integer
    multiply-add otherwise), scaled by 1 / a_row and the weight scale in
    f32. The matmul must have no other reader; act_quant stays while
    something else reads it. The backward (the straight-through dX through
    codes * scale) is untouched. Rewrite patterns applied by the greedy
    driver to the candidate muls only
    (compiler/lowering/IntegerBitLinear.cpp).
  }];
  let dependentDialects = ["::mlir::tessera::TesseraDialect"];
}

def TesseraFuseMatmulEpilogue : Pass<"tessera-fuse-matmul-epilogue", "ModuleOp"> {
  let summary = "Fold the scale by a constant and the add of a tensor that a matmul's result feeds into tessera.fused_matmul";
  let description = [{
    Runs after autodiff and tessera-assign-precision, before
    tessera-fuse-elementwise (which would otherwise take the adds) and
    tessera-select-kernel-configs. A matmul whose result has one use, by a
    binary mul with a constant scalar (a splat of any shape that does not
    broadcast the product) or a binary add of a tensor of the product's
    shape, becomes one tessera.fused_matmul computing alpha * (lhs x rhs) +
    addend with one rounding, at the final store. Mul then add (or add
    then mul: the addend is scaled too, alpha (AB + D) = alpha AB + alpha D
    needs a second factor and is not folded) chain: the LoRA forward's
    scale (x A^T) s and its (u B^T) + base, the backward's scaled products
    and gradient sums each become one kernel
    (compiler/lowering/FuseMatmulEpilogue.cpp; `tessera compile --no-fuse`
    skips it).
  }];
  let dependentDialects = ["::mlir::tessera::TesseraDialect"];
}

def TesseraFuseElementwise : Pass<"tessera-fuse-elementwise", "ModuleOp"> {
  let summary = "Group trees of elementwise ops into tessera.fused_elementwise: one kernel each";
  let description = [{
    Runs after tessera-assign-precision (and assign-quant), before
    tessera-select-kernel-configs. In every function, a maximal tree of
    unary, binary, select and float casts of one result shape whose
    intermediates have no use outside it becomes one fused_elementwise (the
    original ops over 0-d tensors in its body); broadcast operands are
    folded into the inputs' index maps. A value used outside the tree, an
    op of another shape, reductions, matmuls, softmax, dropout and data
    movement end a tree. The storage types of the intermediates are kept,
    and the kernel rounds at the same places, so results are bit-identical
    to the unfused plan (compiler/lowering/FuseElementwise.cpp;
    `tessera compile --no-fuse` skips the pass).
  }];
  let dependentDialects = ["::mlir::tessera::TesseraDialect"];
}

def TesseraFoldRopeTransposes : Pass<"tessera-fold-rope-transposes", "ModuleOp"> {
  let summary = "Fold the transposes around tessera.rope into its addressing";
  let description = [{
    rope(transpose(x, p)) becomes rope(x) {input_permutation = p} and
    transpose(rope(x), p) rope(x) {result_permutation = p} when the
    transpose keeps the last (rotated) dim in place and has no other user:
    the [B, T, H, D] <-> [B, H, T, D] copies around attention's q and k are
    no kernels of their own. Results are bit-identical. After autodiff,
    before tessera-select-kernel-configs
    (compiler/lowering/FoldRopeTransposes.cpp).
  }];
  let dependentDialects = ["::mlir::tessera::TesseraDialect"];
}

def TesseraSelectKernelConfigs : Pass<"tessera-select-kernel-configs", "ModuleOp"> {
  let summary = "Record each kernel op's configuration (tiles, threads) and the SPIR-V target, chosen from the device profile";
  let description = [{
    Sets `tessera.kernel_config` on every tensor op that becomes a kernel
    (keeping configs already present, so a tuner or a test can inject them),
    and on the module `spirv.target_env` (capabilities of the profile's device
    features, resource limits) and `tessera.kernel_target` unless present.
    The rules per kernel family are listed in
    compiler/lowering/SelectKernelConfigs.cpp.
  }];
  let options = [
    Option<"profile", "profile", "std::string", /*default=*/"\"\"",
           "device profile JSON (empty: built-in default)">
  ];
  let dependentDialects = ["::mlir::tessera::TesseraDialect", "::mlir::spirv::SPIRVDialect"];
}

def TesseraWriteTuningPlan : Pass<"tessera-write-tuning-plan", "ModuleOp"> {
  let summary = "Write every kernel problem's candidate kernels as a tuning plan for tessera-rt tune";
  let description = [{
    After tessera-select-kernel-configs: for each distinct kernel problem
    (op, shape-determining attributes, types) of @train_step, @loss,
    @prefill and @decode, the candidates of the profile's search space
    (autotune/SearchSpace.h; the op's own config first) and a reference
    kernel, lowered and converted to SPIR-V, written to `output` as a
    tuning plan (autotune/TuningPlan.h, docs/autotune.md). The module is
    left unchanged. `tessera compile --tuning-plan` runs it.
  }];
  let options = [
    Option<"output", "output", "std::string", /*default=*/"\"\"", "tuning plan file to write">,
    Option<"profile", "profile", "std::string", /*default=*/"\"\"",
           "device profile whose limits bound the search space (empty: built-in default)">,
    Option<"candidates", "candidates", "unsigned", /*default=*/"32", "candidates per matmul problem">,
    Option<"model", "model", "std::string", /*default=*/"\"\"", "model file the plan records">
  ];
  let dependentDialects = ["::mlir::tessera::TesseraDialect", "::mlir::spirv::SPIRVDialect",
                           "::mlir::gpu::GPUDialect", "::mlir::scf::SCFDialect", "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::vector::VectorDialect"];
}

def TesseraLowerToKernels : Pass<"tessera-lower-to-kernels", "ModuleOp"> {
  let summary = "Assign buffers and turn every tensor op of the programs' functions into GPU kernel dispatches";
  let description = [{
    Run tessera-select-kernel-configs first: every kernel is generated from
    its op's `tessera.kernel_config` and the module's kernel target alone.

    Programs, by function and `tessera.role`: @train_step becomes
    tessera.program @train_step, @loss @eval, @prefill and @decode
    (generation, docs/generation.md) their own. A train step of role
    accumulate only accumulates each gradient into <param>.grad_accum; a
    third program, @optimizer_step, clips by the global norm (output buffer
    grad_norm = [sum of squares, norm, coefficient]) and runs AdamW from the
    accumulators. Each live op becomes its dispatches in body order (the
    kernel-lowering patterns, compiler/lowering/kernels/KernelPatterns.cpp);
    identical kernels share one gpu.module; dead ops get none. All func.funcs
    are removed.

    Buffers (one per value, shared between the programs where they mean the
    same thing; flat memref storage, `shape` the logical shape):
      input            @input_ids, @labels (i32), generation inputs
      hparams          @hparams (the train step's third argument)
      weight           one per frozen param name (the sanitised name); one
                       per tile of a split weight (row_offset); a
                       block-quantised weight holds its blocks as i32 words
      lora             one per LoRA param name
      optimizer_state  <param>.exp_avg, <param>.exp_avg_sq; generation state
                       (the KV cache, named by tessera.buffer)
      gradient         <param>.grad (adamw's grad operand, computed in
                       place), <param>.grad_accum
      output           @loss (f32[1], computed in place), @grad_norm,
                       generation outputs
      constant         one per distinct tessera.constant value
      activation       <program>.v<n> for every other value, and scratch
                       buffers <program>.v<n>.<what> some kernels need
    A reshape is an alias buffer (alias = the storage owner) and no kernel,
    as is a tessera.dropout in @eval (dropout is training-only); in
    @train_step dropout binds @hparams (the seed). When a designated value
    (the loss, a gradient, a generation result) cannot be computed in place
    (a parameter, an argument, designated twice) a copy kernel moves it.
    Every activation is written before it is read within its program
    (tessera-reuse-buffers relies on it). Errors name the op: an op no
    pattern lowers, a config its generator refuses, a LoRA parameter used
    after its update, a buffer used with two types.
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect", "::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::math::MathDialect", "::mlir::vector::VectorDialect",
                           "::mlir::spirv::SPIRVDialect"];
}

def TesseraKernelsToSPIRV : Pass<"tessera-kernels-to-spirv", "ModuleOp"> {
  let summary = "Convert each kernel gpu.module to a spirv.module (Vulkan, storage buffers)";
  let description = [{
    Per gpu.module @k, with its spirv.target_env: memref memory spaces
    become storage classes (StorageBuffer, Workgroup), upstream's GPU, SCF,
    Arith, Math, MemRef and Func to SPIR-V patterns convert it (kernel
    argument i at descriptor set 0, binding i), spirv-lower-abi-attrs and
    spirv-update-vce finish it as spirv.module @k (entry point "k"), bf16
    kernels written with f16 types are retyped in the binary
    (compiler/lowering/SpirvBf16.cpp), and every module is serialised as a
    check. A kernel with 16-bit buffers for a target without 16-bit storage
    access is refused, naming the kernel.
  }];
  let dependentDialects = ["::mlir::spirv::SPIRVDialect"];
  let options = [
    Option<"dumpDir", "dump-dir", "std::string", /*default=*/"\"\"",
           "also write each kernel's SPIR-V binary to <dir>/<kernel>.spv (for spirv-val in tests)">
  ];
}

//===----------------------------------------------------------------------===//
// Memory (compiler/memory, docs/memory.md)
//===----------------------------------------------------------------------===//

def TesseraChunkLoss : Pass<"tessera-chunk-loss", "ModuleOp"> {
  let summary = "Split @loss's lm_head matmul + cross_entropy into token chunks";
  let description = [{
    Runs before autodiff. When the [tokens x vocab] logits of @loss exceed
    `budget-bytes` (or `chunk-tokens` is set), the final matmul and
    cross_entropy become one matmul + cross_entropy per chunk of token rows,
    combined into the same mean over counted tokens. Each chunk's logits are
    ops of their own, so tessera-schedule-loss-chunks can free them early.
  }];
  let options = [
    Option<"chunkTokens", "chunk-tokens", "int64_t", /*default=*/"0",
           "token rows per chunk (0: the most that fit budget-bytes; chunking only when needed)">,
    Option<"budgetBytes", "budget-bytes", "int64_t", /*default=*/"67108864",
           "largest logits chunk in bytes when chunk-tokens is 0">,
    Option<"minChunkTokens", "min-chunk-tokens", "int64_t", /*default=*/"0",
           "with chunk-tokens 0, chunks of at least this many token rows where they fit max-chunk-bytes: "
           "below it the lm_head product of a large vocabulary is bound by reading its table, chunk after chunk">,
    Option<"maxChunkBytes", "max-chunk-bytes", "int64_t", /*default=*/"0",
           "the logits chunk a min-chunk-tokens floor may reach (the target's buffer limit; 0: budget-bytes)">
  ];
}

def TesseraSplitLargeTensors : Pass<"tessera-split-large-tensors", "ModuleOp"> {
  let summary = "Split frozen weights larger than the device's buffer limit into row tiles";
  let description = [{
    Runs before autodiff. A frozen weight whose storage exceeds `max-bytes`
    (the profile's max_buffer_bytes: Vulkan's maxStorageBufferRange) becomes
    balanced tiles of its rows (`tessera.param ... {rows = [begin, end]}`),
    each within the limit, and its uses are rewritten in tile terms: a gather
    (embedding) into per-tile gathers that return zeros outside their rows,
    summed; x W^T (linear layer, LM head) into per-tile products concatenated
    along the output features; x W into products of column slices of x,
    summed. Autodiff then derives the gradients through those ops. A weight
    used any other way, or whose single row is over the limit, is refused
    with its name, size and the limit.
  }];
  let options = [
    Option<"maxBytes", "max-bytes", "int64_t", /*default=*/"134217728",
           "largest buffer the device binds, in bytes">,
    Option<"elementBytes", "element-bytes", "int64_t", /*default=*/"0",
           "storage bytes of a frozen weight's element (0: its tensor type's; 2 for f16 / bf16 plans)">
  ];
}

def TesseraScheduleLossChunks : Pass<"tessera-schedule-loss-chunks", "ModuleOp"> {
  let summary = "Move each cross_entropy_grad (and the products of its result) right after its forward chunk";
  let description = [{
    Runs after autodiff on @loss_grad (and @train_step if present). The
    gradient of a loss chunk w.r.t. its logits needs only those logits, the
    labels and the incoming scalar gradient, so it can run as soon as the
    chunk's cross_entropy has: the chunk's logits then die before the next
    chunk's are made.
  }];
}

def TesseraRecompute : Pass<"tessera-recompute", "ModuleOp"> {
  let summary = "Recompute each decoder layer's forward in the backward sweep of @loss_grad";
  let description = [{
    Needs `tessera.layer = N` on the forward ops (tessera-raise). Values of
    layer N that the backward sweep uses, other than the layer's outputs,
    are recomputed from the kept layer inputs right before their first
    backward use, so the forward's copies die inside the forward.
  }];
}

def TesseraRecomputeElementwise : Pass<"tessera-recompute-elementwise", "ModuleOp"> {
  let summary = "Recompute cheap forward values in the backward instead of keeping them";
  let description = [{
    In each training function (tessera.role loss_grad, train_step or
    accumulate; the backward starts at the first cross_entropy_grad), a
    forward unary, binary, select or float cast whose value the backward
    reads is cloned right before its first backward use, and the backward
    reads the clone, when each of its operands is a parameter, a constant,
    another such value, or alive there anyway (read later by the backward):
    the forward's copy then dies in the forward. Runs last in the training
    pipeline, so clones keep their original's types and values bit for bit.
  }];
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

def TesseraStreamWeights : Pass<"tessera-stream-weights", "ModuleOp"> {
  let summary = "Keep frozen weights in host memory and copy them to the device around the dispatches that read them";
  let description = [{
    Runs after tessera-lower-to-kernels, before tessera-reuse-buffers. In
    each program the dispatches binding one frozen weight are grouped into
    runs whose neighbours are at most `max-gap` dispatches apart; each run
    gets an activation buffer of the weight's type (`<name>.streamed`), a
    copy dispatch (attribute `tessera.stream`) `prefetch` dispatches before
    it (the runtime records it as a transfer the dispatches between do not
    wait for, so the copy overlaps them), and binds that buffer instead. The weight becomes `tessera.host_resident` (the
    plan's `"host": true`: the runtime keeps it in host-visible system
    memory). Weights smaller than `min-bytes`, block-quantised weights and
    weights a reshape aliases stay on the device. With `percent` below 100
    only part of the weights is streamed, as many as fit in that share of the
    streamable bytes: first those whose longest run is shortest (a copy holds
    its slot through its run), the largest first among equals (what --memory-budget asks for when streaming part
    of the weights is enough). Records the counts in the
    module attribute `tessera.streamed_weights` = {weights, copies}
    (docs/memory.md).
  }];
  let options = [
    Option<"maxGap", "max-gap", "unsigned", "64",
           "dispatches between two uses of a weight that still share one copy">,
    Option<"minBytes", "min-bytes", "uint64_t", "0", "smallest weight (bytes) that is streamed">,
    Option<"percent", "percent", "unsigned", "100",
           "stream part of the weights, up to this share (%) of the streamable weights' bytes">,
    Option<"prefetch", "prefetch", "unsigned", "32",
           "dispatches between a copy and the first dispatch that reads it (0: just before)">
  ];
}

def TesseraReuseBuffers : Pass<"tessera-reuse-buffers", "ModuleOp"> {
  let summary = "Share storage between activation buffers whose lifetimes do not overlap";
  let description = [{
    Runs after tessera-lower-to-kernels. A root activation buffer lives from
    the first to the last dispatch (of its program) that binds it or an
    alias of it. Buffers used by one program only are packed greedily by
    size into shared `activation` slot buffers (the members become aliases);
    programs never run at the same time, so slots are shared across them.
    Weights, LoRA factors, gradients, optimizer state, inputs, outputs and
    constants are never shared. Records the sizes in the module attribute
    `tessera.memory` (see docs/memory.md).
  }];
}

#endif // TESSERA_PASSES_TD
