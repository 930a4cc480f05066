// A LoRA'd linear layer between frozen ones: y2 = x W1^T + (x A^T) B^T, then
// the lm_head. The gradient flows back through the lm_head to the adapter
// only: no gradient of a frozen weight ([8x8] W1, [16x8] lm_head), no gradient
// into the frozen branch x W1^T or the embedding. The LoRA weight gradients
// fold the batch dims into one 2-D matmul.
// RUN: tessera-opt %s --tessera-autodiff | FileCheck %s

// CHECK-LABEL: func.func @loss_grad(%arg0: tensor<1x4xi32>, %arg1: tensor<1x4xi32>) -> (tensor<f32>, tensor<2x8xf32> {tessera.grad_of = "layers.0.mlp.up_proj.lora_A"}, tensor<8x2xf32> {tessera.grad_of = "layers.0.mlp.up_proj.lora_B"})
// CHECK: %[[H:.*]] = tessera.gather
// CHECK: %[[A:.*]] = tessera.param lora_a
// CHECK-NEXT: %[[B:.*]] = tessera.param lora_b
// CHECK-NEXT: %[[XA:.*]] = tessera.matmul %[[H]], %[[A]]
// CHECK: %[[W2:.*]] = tessera.param frozen "lm_head.weight"
// CHECK-NEXT: %[[LOGITS:.*]] = tessera.matmul
// CHECK-NEXT: %[[L:.*]] = tessera.cross_entropy %[[LOGITS]], %arg1
// CHECK-NEXT: %[[ONE:.*]] = tessera.constant dense<1.000000e+00> : tensor<f32>
// CHECK-NEXT: %[[GL:.*]] = tessera.cross_entropy_grad %[[LOGITS]], %arg1, %[[ONE]] : (tensor<1x4x16xf32>, tensor<1x4xi32>, tensor<f32>) -> tensor<1x4x16xf32>
// CHECK-NEXT: %[[GY:.*]] = tessera.matmul %[[GL]], %[[W2]] : (tensor<1x4x16xf32>, tensor<16x8xf32>) -> tensor<1x4x8xf32>
// CHECK-NEXT: %[[GXA:.*]] = tessera.matmul %[[GY]], %[[B]] : (tensor<1x4x8xf32>, tensor<8x2xf32>) -> tensor<1x4x2xf32>
// CHECK-NEXT: %[[XA2:.*]] = tessera.reshape %[[XA]] : tensor<1x4x2xf32> -> tensor<4x2xf32>
// CHECK-NEXT: %[[GY2:.*]] = tessera.reshape %[[GY]] : tensor<1x4x8xf32> -> tensor<4x8xf32>
// CHECK-NEXT: %[[GB:.*]] = tessera.matmul %[[GY2]], %[[XA2]] {transpose_lhs = true} : (tensor<4x8xf32>, tensor<4x2xf32>) -> tensor<8x2xf32>
// CHECK-NEXT: %[[H2:.*]] = tessera.reshape %[[H]] : tensor<1x4x8xf32> -> tensor<4x8xf32>
// CHECK-NEXT: %[[GXA2:.*]] = tessera.reshape %[[GXA]] : tensor<1x4x2xf32> -> tensor<4x2xf32>
// CHECK-NEXT: %[[GA:.*]] = tessera.matmul %[[GXA2]], %[[H2]] {transpose_lhs = true} : (tensor<4x2xf32>, tensor<4x8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT: return %[[L]], %[[GA]], %[[GB]] : tensor<f32>, tensor<2x8xf32>, tensor<8x2xf32>
func.func @loss(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>) -> tensor<f32> {
  %emb = tessera.param frozen "model.embed_tokens.weight" : tensor<16x8xf32>
  %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x4xi32>) -> tensor<1x4x8xf32>
  %w1 = tessera.param frozen "model.layers.0.mlp.up_proj.weight" : tensor<8x8xf32>
  %y1 = tessera.matmul %h, %w1 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %a = tessera.param lora_a "layers.0.mlp.up_proj.lora_A" : tensor<2x8xf32>
  %b = tessera.param lora_b "layers.0.mlp.up_proj.lora_B" : tensor<8x2xf32>
  %xa = tessera.matmul %h, %a {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<2x8xf32>) -> tensor<1x4x2xf32>
  %d = tessera.matmul %xa, %b {transpose_rhs = true} : (tensor<1x4x2xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
  %y2 = tessera.binary add %y1, %d : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  %w2 = tessera.param frozen "lm_head.weight" : tensor<16x8xf32>
  %logits = tessera.matmul %y2, %w2 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  %l = tessera.cross_entropy %logits, %labels : (tensor<1x4x16xf32>, tensor<1x4xi32>) -> tensor<f32>
  return %l : tensor<f32>
}
