// Activity analysis: only values that depend on a LoRA param and that the
// loss depends on get gradients.
// RUN: tessera-opt %s --tessera-autodiff | FileCheck %s

// "dead" reaches nothing the loss uses: zero gradient, no gradient ops for
// its branch. The frozen-only exp(w) branch is never differentiated.
// CHECK-LABEL: func.func @loss_grad() -> (tensor<f32>, tensor<3xf32> {tessera.grad_of = "x"}, tensor<2x2xf32> {tessera.grad_of = "dead"})
// CHECK: %[[X:.*]] = tessera.param lora_a "x"
// CHECK: %[[W:.*]] = tessera.param frozen "w"
// CHECK-NEXT: %[[EW:.*]] = tessera.unary exp %[[W]]
// CHECK: %[[L:.*]] = tessera.reduce sum
// The gradient of sum(x * exp(w)) is exp(w), broadcast from the seed.
// CHECK-NEXT: %[[ONE:.*]] = tessera.constant dense<1.000000e+00> : tensor<f32>
// CHECK-NEXT: %[[G:.*]] = tessera.broadcast %[[ONE]] : tensor<f32> -> tensor<3xf32>
// CHECK-NEXT: %[[GX:.*]] = tessera.binary mul %[[G]], %[[EW]]
// CHECK-NEXT: %[[Z:.*]] = tessera.constant dense<0.000000e+00> : tensor<2x2xf32>
// CHECK-NEXT: return %[[L]], %[[GX]], %[[Z]] : tensor<f32>, tensor<3xf32>, tensor<2x2xf32>
func.func @loss() -> tensor<f32> {
  %x = tessera.param lora_a "x" : tensor<3xf32>
  %dead = tessera.param lora_b "dead" : tensor<2x2xf32>
  %unused = tessera.unary tanh %dead : tensor<2x2xf32>
  %w = tessera.param frozen "w" : tensor<3xf32>
  %ew = tessera.unary exp %w : tensor<3xf32>
  %m = tessera.binary mul %x, %ew : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %l = tessera.reduce sum %m {axes = array<i64: 0>} : tensor<3xf32> -> tensor<f32>
  return %l : tensor<f32>
}
