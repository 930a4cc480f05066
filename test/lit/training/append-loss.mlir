// tessera-append-loss: @loss(input_ids, labels) = cross_entropy(forward body),
// @forward kept unchanged.
// RUN: tessera-opt %s --tessera-append-loss | FileCheck %s

// CHECK-LABEL: func.func @forward(%arg0: tensor<2x3xi32>) -> tensor<2x3x5xf32>
// CHECK: return %{{.*}} : tensor<2x3x5xf32>
// CHECK-LABEL: func.func @loss(%arg0: tensor<2x3xi32>, %arg1: tensor<2x3xi32>) -> tensor<f32>
// CHECK-NEXT: %[[E:.*]] = tessera.param frozen "model.embed_tokens.weight" : tensor<5x4xf32>
// CHECK-NEXT: %[[H:.*]] = tessera.gather %[[E]][%arg0]
// CHECK-NEXT: %[[A:.*]] = tessera.param lora_a "lm_head.lora_A" : tensor<2x4xf32>
// CHECK-NEXT: %[[X:.*]] = tessera.matmul %[[H]], %[[A]]
// CHECK-NEXT: %[[W:.*]] = tessera.param frozen "lm_head.weight" : tensor<5x4xf32>
// CHECK-NEXT: %[[L:.*]] = tessera.matmul %[[H]], %[[W]] {transpose_rhs = true} : (tensor<2x3x4xf32>, tensor<5x4xf32>) -> tensor<2x3x5xf32>
// ignore_index = -100 and shift = true are the defaults (elided when printed).
// CHECK-NEXT: %[[CE:.*]] = tessera.cross_entropy %[[L]], %arg1 : (tensor<2x3x5xf32>, tensor<2x3xi32>) -> tensor<f32>
// CHECK-NEXT: return %[[CE]] : tensor<f32>
func.func @forward(%ids: tensor<2x3xi32>) -> tensor<2x3x5xf32> {
  %emb = tessera.param frozen "model.embed_tokens.weight" : tensor<5x4xf32>
  %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<5x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
  %a = tessera.param lora_a "lm_head.lora_A" : tensor<2x4xf32>
  %unused = tessera.matmul %h, %a {transpose_rhs = true} : (tensor<2x3x4xf32>, tensor<2x4xf32>) -> tensor<2x3x2xf32>
  %w = tessera.param frozen "lm_head.weight" : tensor<5x4xf32>
  %logits = tessera.matmul %h, %w {transpose_rhs = true} : (tensor<2x3x4xf32>, tensor<5x4xf32>) -> tensor<2x3x5xf32>
  return %logits : tensor<2x3x5xf32>
}

// The cross-entropy attributes, printed generically.
// RUN: tessera-opt %s --tessera-append-loss --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC
// GENERIC: "tessera.cross_entropy"(%{{.*}}, %{{.*}}) <{ignore_index = -100 : i64, shift = true}>
