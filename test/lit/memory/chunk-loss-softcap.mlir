// Row-wise ops between the lm_head matmul and the cross_entropy (a logit
// scale, a softcap) are applied per chunk; a pattern the pass does not know
// (logits used twice) is left alone.
// RUN: tessera-opt %s --split-input-file --tessera-chunk-loss="chunk-tokens=2" | FileCheck %s

// CHECK-LABEL: func.func @loss
// CHECK: %[[L:.*]] = tessera.matmul %{{.*}} : (tensor<2x3xf32>, tensor<3x6xf32>) -> tensor<2x6xf32>
// CHECK-NEXT: %[[D:.*]] = tessera.binary div %[[L]], %{{.*}} : (tensor<2x6xf32>, tensor<f32>) -> tensor<2x6xf32>
// CHECK-NEXT: %[[T:.*]] = tessera.unary tanh %[[D]] : tensor<2x6xf32>
// CHECK: tessera.cross_entropy %[[T]], %{{.*}} {shift = false} : (tensor<2x6xf32>, tensor<2xi32>)
// CHECK-COUNT-1: tessera.cross_entropy %{{.*}} {shift = false} : (tensor<2x6xf32>, tensor<2xi32>)
func.func @loss(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>) -> tensor<f32> {
  %h = tessera.param frozen "h" : tensor<1x4x3xf32>
  %w = tessera.param frozen "w" : tensor<3x6xf32>
  %logits = tessera.matmul %h, %w : (tensor<1x4x3xf32>, tensor<3x6xf32>) -> tensor<1x4x6xf32>
  %cap = tessera.constant dense<3.0> : tensor<f32>
  %d = tessera.binary div %logits, %cap : (tensor<1x4x6xf32>, tensor<f32>) -> tensor<1x4x6xf32>
  %t = tessera.unary tanh %d : tensor<1x4x6xf32>
  %ce = tessera.cross_entropy %t, %labels : (tensor<1x4x6xf32>, tensor<1x4xi32>) -> tensor<f32>
  return %ce : tensor<f32>
}

// -----

// CHECK-LABEL: func.func @loss
// CHECK: tessera.cross_entropy %{{.*}}, %arg1 : (tensor<1x4x6xf32>, tensor<1x4xi32>) -> tensor<f32>
// CHECK-NOT: shift = false
func.func @loss(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>) -> tensor<f32> {
  %h = tessera.param frozen "h" : tensor<1x4x3xf32>
  %w = tessera.param frozen "w" : tensor<3x6xf32>
  %logits = tessera.matmul %h, %w : (tensor<1x4x3xf32>, tensor<3x6xf32>) -> tensor<1x4x6xf32>
  %ce = tessera.cross_entropy %logits, %labels : (tensor<1x4x6xf32>, tensor<1x4xi32>) -> tensor<f32>
  %r = tessera.reduce sum %logits {axes = array<i64: 0, 1, 2>} : tensor<1x4x6xf32> -> tensor<f32>
  %s = tessera.binary add %ce, %r : (tensor<f32>, tensor<f32>) -> tensor<f32>
  return %s : tensor<f32>
}
