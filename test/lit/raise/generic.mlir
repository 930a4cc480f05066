// What tessera-raise does not recognise stays generic, and is listed in
// tessera.arch's generic_ops (op kind, count, first ONNX node names).
// RUN: tessera-opt %s --split-input-file --tessera-raise | FileCheck %s

// A residual MLP block with a plain ReLU (no gate): one layer, not raised; its
// linears keep no structural name; the head is still found.
// CHECK: tessera.arch = {activation = "none", arch = "decoder", {{.*}}generic_ops = [{count = 2 : i64, nodes = [], op = "tessera.matmul"}, {count = 1 : i64, nodes = ["node_relu"], op = "tessera.unary relu"}], {{.*}}layers = 1 : i64, linear_layers = 1 : i64, {{.*}}norm = "none", {{.*}}vocab = 7 : i64}
// CHECK-LABEL: func.func @forward
// CHECK: %[[H:.*]] = tessera.embedding
// CHECK: %[[UP:.*]] = tessera.matmul %[[H]], %{{.*}} {tessera.layer = 0 : i64, transpose_rhs = true}
// CHECK-NEXT: tessera.unary relu %[[UP]] {tessera.layer = 0 : i64}
// CHECK-NOT: tessera.module = "layers
// CHECK: tessera.matmul {{.*}}{tessera.module = "lm_head", transpose_rhs = true}
func.func @forward(%ids: tensor<1x3xi32>) -> tensor<1x3x7xf32> {
  %emb = tessera.param frozen "model.embed_tokens.weight" : tensor<7x4xf32>
  %h = tessera.gather %emb[%ids] : (tensor<7x4xf32>, tensor<1x3xi32>) -> tensor<1x3x4xf32>
  %w1 = tessera.param frozen "model.layers.0.fc1.weight" : tensor<8x4xf32>
  %u = tessera.matmul %h, %w1 {transpose_rhs = true} : (tensor<1x3x4xf32>, tensor<8x4xf32>) -> tensor<1x3x8xf32>
  %r = tessera.unary relu %u : tensor<1x3x8xf32> loc("node_relu")
  %w2 = tessera.param frozen "model.layers.0.fc2.weight" : tensor<4x8xf32>
  %d = tessera.matmul %r, %w2 {transpose_rhs = true} : (tensor<1x3x8xf32>, tensor<4x8xf32>) -> tensor<1x3x4xf32>
  %h1 = tessera.binary add %h, %d : (tensor<1x3x4xf32>, tensor<1x3x4xf32>) -> tensor<1x3x4xf32>
  %head = tessera.param frozen "lm_head.weight" : tensor<7x4xf32>
  %logits = tessera.matmul %h1, %head {transpose_rhs = true} : (tensor<1x3x4xf32>, tensor<7x4xf32>) -> tensor<1x3x7xf32>
  return %logits : tensor<1x3x7xf32>
}

// -----

// Near misses stay generic: a "norm" reducing over a non-last axis, a
// rotate-half whose halves are swapped the wrong way round.
// CHECK: tessera.arch = {activation = "none", arch = "unknown", {{.*}}layers = 0 : i64
// CHECK-LABEL: func.func @forward
// CHECK-NOT: tessera.rms_norm
// CHECK-NOT: tessera.rope
// CHECK: tessera.reduce mean
// CHECK: tessera.concat
// CHECK: return
func.func @forward(%ids: tensor<1x4xi32>) -> tensor<1x4x4xf32> {
  %emb = tessera.param frozen "embed.weight" : tensor<9x4xf32>
  %x = tessera.gather %emb[%ids] : (tensor<9x4xf32>, tensor<1x4xi32>) -> tensor<1x4x4xf32>
  %sq = tessera.binary mul %x, %x : (tensor<1x4x4xf32>, tensor<1x4x4xf32>) -> tensor<1x4x4xf32>
  %m = tessera.reduce mean %sq {axes = array<i64: 1>, keepdims = true} : tensor<1x4x4xf32> -> tensor<1x1x4xf32>
  %eps = tessera.constant dense<1.0e-6> : tensor<f32>
  %a = tessera.binary add %m, %eps : (tensor<1x1x4xf32>, tensor<f32>) -> tensor<1x1x4xf32>
  %r = tessera.unary rsqrt %a : tensor<1x1x4xf32>
  %n = tessera.binary mul %x, %r : (tensor<1x4x4xf32>, tensor<1x1x4xf32>) -> tensor<1x4x4xf32>
  %w = tessera.param frozen "norm.weight" : tensor<4xf32>
  %y = tessera.binary mul %n, %w : (tensor<1x4x4xf32>, tensor<4xf32>) -> tensor<1x4x4xf32>
  %lo = tessera.slice %y {starts = array<i64: 0, 0, 0>, limits = array<i64: 1, 4, 2>, strides = array<i64: 1, 1, 1>} : tensor<1x4x4xf32> -> tensor<1x4x2xf32>
  %hi = tessera.slice %y {starts = array<i64: 0, 0, 2>, limits = array<i64: 1, 4, 4>, strides = array<i64: 1, 1, 1>} : tensor<1x4x4xf32> -> tensor<1x4x2xf32>
  %nlo = tessera.unary neg %lo : tensor<1x4x2xf32>
  %rot = tessera.concat %nlo, %hi {axis = 2 : i64} : (tensor<1x4x2xf32>, tensor<1x4x2xf32>) -> tensor<1x4x4xf32>
  %cos = tessera.constant dense<0.5> : tensor<1x4x4xf32>
  %sin = tessera.constant dense<0.25> : tensor<1x4x4xf32>
  %yc = tessera.binary mul %y, %cos : (tensor<1x4x4xf32>, tensor<1x4x4xf32>) -> tensor<1x4x4xf32>
  %rs = tessera.binary mul %rot, %sin : (tensor<1x4x4xf32>, tensor<1x4x4xf32>) -> tensor<1x4x4xf32>
  %z = tessera.binary add %yc, %rs : (tensor<1x4x4xf32>, tensor<1x4x4xf32>) -> tensor<1x4x4xf32>
  return %z : tensor<1x4x4xf32>
}
