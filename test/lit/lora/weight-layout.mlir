// A linear layer with W stored [in, out] (transpose_rhs = false) still gets
// PEFT-layout factors A [r, in] and B [out, r]; a rank-2 lhs works too.
// RUN: tessera-opt %s --tessera-inject-lora="targets=fc rank=3 alpha=6" | FileCheck %s

// CHECK-LABEL: func.func @forward
func.func @forward(%ids: tensor<2x5xi32>) -> tensor<2x5x7xf32> {
  %emb = tessera.param frozen "model.embed_tokens.weight" : tensor<7x4xf32>
  %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<7x4xf32>, tensor<2x5xi32>) -> tensor<2x5x4xf32>
  %h2 = tessera.reshape %h : tensor<2x5x4xf32> -> tensor<10x4xf32>
  // CHECK: %[[W:.*]] = tessera.param frozen "model.fc.weight" : tensor<4x6xf32>
  // CHECK-NEXT: %[[Y:.*]] = tessera.matmul %[[X:.*]], %[[W]] : (tensor<10x4xf32>, tensor<4x6xf32>) -> tensor<10x6xf32>
  // CHECK-NEXT: %[[A:.*]] = tessera.param lora_a "fc.lora_A" : tensor<3x4xf32>
  // CHECK-NEXT: %[[B:.*]] = tessera.param lora_b "fc.lora_B" : tensor<6x3xf32>
  // CHECK-NEXT: tessera.matmul %[[X]], %[[A]] {transpose_rhs = true} : (tensor<10x4xf32>, tensor<3x4xf32>) -> tensor<10x3xf32>
  // CHECK-NEXT: tessera.constant dense<2.000000e+00>
  // CHECK-NEXT: tessera.binary mul
  // CHECK-NEXT: tessera.matmul {{.*}}, %[[B]] {transpose_rhs = true} : (tensor<10x3xf32>, tensor<6x3xf32>) -> tensor<10x6xf32>
  // CHECK-NEXT: %[[S:.*]] = tessera.binary add %[[Y]]
  // CHECK-NEXT: tessera.reshape %[[S]]
  %w = tessera.param frozen "model.fc.weight" : tensor<4x6xf32>
  %y = tessera.matmul %h2, %w : (tensor<10x4xf32>, tensor<4x6xf32>) -> tensor<10x6xf32>
  %y3 = tessera.reshape %y : tensor<10x6xf32> -> tensor<2x5x6xf32>
  // Another linear layer, not a target: untouched.
  %u = tessera.param frozen "model.up.weight" : tensor<7x6xf32>
  %logits = tessera.matmul %y3, %u {transpose_rhs = true} : (tensor<2x5x6xf32>, tensor<7x6xf32>) -> tensor<2x5x7xf32>
  // CHECK-NOT: up.lora
  return %logits : tensor<2x5x7xf32>
}
