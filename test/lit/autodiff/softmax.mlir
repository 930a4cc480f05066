// softmax: dx = y * (g - sum(g * y, last axis)); reduce mean scales the
// small gradient before broadcasting it.
// RUN: tessera-opt %s --tessera-autodiff | FileCheck %s

// CHECK-LABEL: func.func @loss_grad() -> (tensor<f32>, tensor<2x5xf32> {tessera.grad_of = "x"})
// CHECK: %[[Y:.*]] = tessera.softmax
// CHECK: %[[W:.*]] = tessera.param frozen "w"
// CHECK: %[[K:.*]] = tessera.constant dense<1.000000e-01> : tensor<f32>
// CHECK-NEXT: %[[S:.*]] = tessera.binary mul %{{.*}}, %[[K]] : (tensor<f32>, tensor<f32>) -> tensor<f32>
// CHECK-NEXT: %[[GM:.*]] = tessera.broadcast %[[S]] : tensor<f32> -> tensor<2x5xf32>
// CHECK-NEXT: %[[G:.*]] = tessera.binary mul %[[GM]], %[[W]]
// CHECK-NEXT: %[[GY:.*]] = tessera.binary mul %[[G]], %[[Y]]
// CHECK-NEXT: %[[R:.*]] = tessera.reduce sum %[[GY]] {axes = array<i64: 1>, keepdims = true} : tensor<2x5xf32> -> tensor<2x1xf32>
// CHECK-NEXT: %[[D:.*]] = tessera.binary sub %[[G]], %[[R]] : (tensor<2x5xf32>, tensor<2x1xf32>) -> tensor<2x5xf32>
// CHECK-NEXT: %[[GX:.*]] = tessera.binary mul %[[Y]], %[[D]]
// CHECK-NEXT: return %{{.*}}, %[[GX]]
func.func @loss() -> tensor<f32> {
  %x = tessera.param lora_a "x" : tensor<2x5xf32>
  %p = tessera.softmax %x : tensor<2x5xf32>
  %w = tessera.param frozen "w" : tensor<2x5xf32>
  %m = tessera.binary mul %p, %w : (tensor<2x5xf32>, tensor<2x5xf32>) -> tensor<2x5xf32>
  %l = tessera.reduce mean %m {axes = array<i64: 0, 1>} : tensor<2x5xf32> -> tensor<f32>
  return %l : tensor<f32>
}
