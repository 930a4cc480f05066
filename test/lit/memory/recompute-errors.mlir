// RUN: not tessera-opt %s --tessera-autodiff --tessera-recompute 2>&1 | FileCheck %s

// Without tessera.layer marks there is nothing to recompute: one clear error.
// CHECK: error: tessera-recompute: no decoder layers found: recomputation needs the forward ops marked with tessera.layer (the tessera-raise pass marks recognised decoder layers)
func.func @loss(%ids: tensor<1x3xi32>, %labels: tensor<1x3xi32>) -> tensor<f32> {
  %emb = tessera.param frozen "embed.weight" : tensor<7x4xf32>
  %x0 = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<7x4xf32>, tensor<1x3xi32>) -> tensor<1x3x4xf32>
  %a = tessera.param lora_a "l.lora_A" : tensor<4xf32>
  %t0 = tessera.binary mul %x0, %a : (tensor<1x3x4xf32>, tensor<4xf32>) -> tensor<1x3x4xf32>
  %w = tessera.param frozen "lm_head.weight" : tensor<7x4xf32>
  %logits = tessera.matmul %t0, %w {transpose_rhs = true} : (tensor<1x3x4xf32>, tensor<7x4xf32>) -> tensor<1x3x7xf32>
  %ce = tessera.cross_entropy %logits, %labels : (tensor<1x3x7xf32>, tensor<1x3xi32>) -> tensor<f32>
  return %ce : tensor<f32>
}
