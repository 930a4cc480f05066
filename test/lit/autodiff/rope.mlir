// rope is linear in its input: the gradient is one tessera.rope {transposed}
// of the incoming gradient with the same tables (and no table gradient).
// RUN: tessera-opt %s --split-input-file --tessera-autodiff | FileCheck %s

// CHECK-LABEL: func.func @loss_grad() -> (tensor<f32>, tensor<1x2x3x4xf32> {tessera.grad_of = "x"})
// CHECK: %[[C:.*]] = tessera.param frozen "cos"
// CHECK: %[[S:.*]] = tessera.param frozen "sin"
// CHECK: %[[W:.*]] = tessera.param frozen "w"
// CHECK: tessera.broadcast
// CHECK-NEXT: %[[G:.*]] = tessera.binary mul %{{.*}}, %[[W]]
// CHECK-NEXT: %[[GX:.*]] = tessera.rope %[[G]], %[[C]], %[[S]] {transposed} : (tensor<1x2x3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<1x2x3x4xf32>
// CHECK-NEXT: return %{{.*}}, %[[GX]]
func.func @loss() -> tensor<f32> {
  %x = tessera.param lora_a "x" : tensor<1x2x3x4xf32>
  %c = tessera.param frozen "cos" : tensor<3x4xf32>
  %s = tessera.param frozen "sin" : tensor<3x4xf32>
  %r = tessera.rope %x, %c, %s : (tensor<1x2x3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<1x2x3x4xf32>
  %w = tessera.param frozen "w" : tensor<1x2x3x4xf32>
  %m = tessera.binary mul %r, %w : (tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  %l = tessera.reduce sum %m {axes = array<i64: 0, 1, 2, 3>} : tensor<1x2x3x4xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// The gradient of the transposed op is the op itself.
// CHECK-LABEL: func.func @loss_grad(
// CHECK: tessera.rope %{{.*}} {transposed}
// CHECK: tessera.rope %{{.*}}, %{{.*}}, %{{.*}} : (tensor<1x2x3x4xf32>
// CHECK-NOT: transposed
func.func @loss() -> tensor<f32> {
  %x = tessera.param lora_a "x" : tensor<1x2x3x4xf32>
  %c = tessera.param frozen "cos" : tensor<3x4xf32>
  %s = tessera.param frozen "sin" : tensor<3x4xf32>
  %r = tessera.rope %x, %c, %s {transposed} : (tensor<1x2x3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<1x2x3x4xf32>
  %l = tessera.reduce sum %r {axes = array<i64: 0, 1, 2, 3>} : tensor<1x2x3x4xf32> -> tensor<f32>
  return %l : tensor<f32>
}
