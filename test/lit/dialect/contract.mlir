// The inter-pass contract: the dialect's discardable attributes
// (TesseraDialect.td, discardableAttrs) round-trip where they belong, and the
// dialect's verifier rejects each misuse with its message; the plan-level ops'
// verifiers (buffer: type, shape, init, alias; dispatch: its symbols) too.
// RUN: tessera-opt %S/Inputs/contract-ok.mlir | tessera-opt | FileCheck %S/Inputs/contract-ok.mlir
// RUN: tessera-opt %s --split-input-file --verify-diagnostics

func.func @layer_negative(%x: tensor<2xf32>) -> tensor<2xf32> {
  // expected-error @+1 {{'tessera.layer' must be a layer index (an integer >= 0)}}
  %0 = tessera.unary neg %x {tessera.layer = -1 : i64} : tensor<2xf32>
  return %0 : tensor<2xf32>
}

// -----

func.func @layer_string(%x: tensor<2xf32>) -> tensor<2xf32> {
  // expected-error @+1 {{'tessera.layer' must be a layer index (an integer >= 0)}}
  %0 = tessera.unary neg %x {tessera.layer = "0"} : tensor<2xf32>
  return %0 : tensor<2xf32>
}

// -----

func.func @module_on_unary(%x: tensor<2xf32>) -> tensor<2xf32> {
  // expected-error @+1 {{'tessera.module' names a linear layer: it belongs on a tessera.matmul}}
  %0 = tessera.unary neg %x {tessera.module = "layers.0.mlp.up_proj"} : tensor<2xf32>
  return %0 : tensor<2xf32>
}

// -----

func.func @module_empty(%x: tensor<2x3xf32>, %w: tensor<4x3xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{'tessera.module' must be a non-empty structural name}}
  %0 = tessera.matmul %x, %w {transpose_rhs = true, tessera.module = ""} : (tensor<2x3xf32>, tensor<4x3xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

// expected-error @+1 {{'tessera.lora' needs int field 'rank'}}
module attributes {tessera.lora = {alpha = 4.0 : f64}} {
}

// -----

// expected-error @+1 {{'tessera.lora' rank must be >= 1}}
module attributes {tessera.lora = {rank = 0 : i64, alpha = 4.0 : f64}} {
}

// -----

func.func @lora_on_func() attributes {tessera.lora = {rank = 2 : i64, alpha = 4.0 : f64}} {
  // expected-error @-1 {{'tessera.lora' belongs on the module}}
  return
}

// -----

// expected-error @+1 {{'tessera.arch' needs string field 'arch'}}
module attributes {tessera.arch = {layers = 2 : i64}} {
}

// -----

// expected-error @+1 {{'tessera.precision' must be "fp32", "f16" or "bf16"}}
module attributes {tessera.precision = "fp8"} {
}

// -----

// expected-error @+1 {{'tessera.vocab' must be the vocabulary size (an integer >= 1)}}
module attributes {tessera.vocab = 0 : i64} {
}

// -----

// expected-error @+1 {{'tessera.memory' must be a dictionary}}
module attributes {tessera.memory = 3 : i64} {
}

// -----

// expected-error @+1 {{unknown Tessera attribute 'tessera.note'}}
module attributes {tessera.note = "typo"} {
}

// -----

// expected-error @+1 {{'tessera.role' belongs on a func.func}}
module attributes {tessera.role = #tessera<program_role loss>} {
}

// -----

// expected-error @+1 {{role accumulate needs (input_ids, labels, hparams) with at least 10 hparams}}
func.func @train_step(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>, %hp: tensor<8xf32>) -> tensor<f32> attributes {tessera.role = #tessera<program_role accumulate>} {
  %c = tessera.constant dense<0.0> : tensor<f32>
  return %c : tensor<f32>
}

// -----

// expected-error @+1 {{role train_step needs (input_ids, labels, hparams) with at least 8 hparams}}
func.func @train_step(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>) -> tensor<f32> attributes {tessera.role = #tessera<program_role train_step>} {
  %c = tessera.constant dense<0.0> : tensor<f32>
  return %c : tensor<f32>
}

// -----

// expected-error @+1 {{'tessera.role' must be a #tessera.program_role}}
func.func @f() attributes {tessera.role = "loss"} {
  return
}

// -----

// expected-error @+1 {{result 0: 'tessera.grad_of' must name the parameter (a non-empty string)}}
func.func @g() -> (tensor<f32> {tessera.grad_of = 1 : i64}) {
  %c = tessera.constant dense<0.0> : tensor<f32>
  return %c : tensor<f32>
}

// -----

// expected-error @+1 {{argument 0: unknown Tessera argument attribute 'tessera.grad_of'}}
func.func @g(%x: tensor<f32> {tessera.grad_of = "w"}) {
  return
}

// -----

// expected-error @+1 {{argument 0: 'tessera.buffer_kind' must be input, output or state}}
func.func @prefill(%x: tensor<1x4xi32> {tessera.buffer = "input_ids", tessera.buffer_kind = "weight"}) {
  return
}

// -----

// expected-error @+1 {{argument 0: 'tessera.buffer' must be a non-empty string}}
func.func @prefill(%x: tensor<1x4xi32> {tessera.buffer = "", tessera.buffer_kind = "input"}) {
  return
}

// -----

func.func @grad_of_on_op(%x: tensor<2xf32>) -> tensor<2xf32> {
  // expected-error @+1 {{'tessera.grad_of' belongs on a function's arguments or results}}
  %0 = tessera.unary neg %x {tessera.grad_of = "w"} : tensor<2xf32>
  return %0 : tensor<2xf32>
}

// -----

// expected-error @+1 {{'tessera.bf16_as_f16' is a unit attribute}}
module attributes {tessera.bf16_as_f16 = 1 : i64} {
}

// -----

// expected-error @+1 {{'tessera.buffer' op type must be a static 1-D memref, got 'memref<2x3xf32>'}}
tessera.buffer activation @v : memref<2x3xf32>

// -----

// expected-error @+1 {{'tessera.buffer' op shape holds 6 elements, the memref 4}}
tessera.buffer activation @v : memref<4xf32> {shape = array<i64: 2, 3>}

// -----

// expected-error @+1 {{'tessera.buffer' op init data belongs to constant buffers, not weight}}
tessera.buffer weight @w : memref<2xf32> {init = dense<[1.0, 2.0]> : tensor<2xf32>}

// -----

// expected-error @+1 {{'tessera.buffer' op init holds 2 elements, the memref 3}}
tessera.buffer constant @c : memref<3xf32> {init = dense<[1.0, 2.0]> : tensor<2xf32>}

// -----

// expected-error @+1 {{'tessera.buffer' op aliases itself}}
tessera.buffer activation @v : memref<2xf32> {alias = @v}

// -----

tessera.buffer activation @v : memref<2xf32>
// expected-error @+1 {{'tessera.buffer' op is larger than the buffer @v whose storage it shares}}
tessera.buffer activation @w : memref<4xf32> {alias = @v}

// -----

// expected-error @+1 {{'tessera.buffer' op alias @nowhere is not a tessera.buffer}}
tessera.buffer activation @w : memref<4xf32> {alias = @nowhere}

// -----

tessera.buffer activation @v : memref<2xf32>
gpu.module @k {
}
tessera.program @p {
  // expected-error @+1 {{'tessera.dispatch' op binding 1: @k is not a tessera.buffer}}
  tessera.dispatch @k [@v, @k] workgroups [1, 1, 1]
}

// -----

tessera.buffer activation @v : memref<2xf32>
tessera.program @p {
  // expected-error @+1 {{'tessera.dispatch' op kernel @k is not defined}}
  tessera.dispatch @k [@v] workgroups [1, 1, 1]
}

// -----

func.func @quant_unknown_type() -> tensor<4x32xf32> {
  // expected-error @+1 {{'tessera.quant' must be "q8_0", "q4_0" or "tq2_0"}}
  %w = tessera.param frozen "w" {tessera.quant = "q4_k"} : tensor<4x32xf32>
  return %w : tensor<4x32xf32>
}

// -----

func.func @quant_on_lora() -> tensor<4x32xf32> {
  // expected-error @+1 {{'tessera.quant' belongs on a frozen 2-D tessera.param or its tessera.buffer}}
  %w = tessera.param lora_a "w.lora_A" {tessera.quant = "q8_0"} : tensor<4x32xf32>
  return %w : tensor<4x32xf32>
}

// -----

func.func @quant_transposed_alone() -> tensor<4x32xf32> {
  // expected-error @+1 {{'tessera.quant_transposed' is a unit attribute beside tessera.quant}}
  %w = tessera.param frozen "w" {tessera.quant_transposed} : tensor<4x32xf32>
  return %w : tensor<4x32xf32>
}

// -----

// expected-error @+1 {{'tessera.buffer' op a q4_0 buffer of 64 values holds 9 words of its blocks, not 16 x 'i32'}}
tessera.buffer weight @w : memref<16xi32> {shape = array<i64: 2, 32>, tessera.quant = "q4_0"}
