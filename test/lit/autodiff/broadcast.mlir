// Broadcasting binary ops: each operand's gradient is reduce-summed over its
// broadcast axes, then reshaped to the operand's shape. The frozen "x" gets
// no gradient work.
// RUN: tessera-opt %s --tessera-autodiff | FileCheck %s

// CHECK-LABEL: func.func @loss_grad() -> (tensor<f32>, tensor<4xf32> {tessera.grad_of = "b"}, tensor<3x1xf32> {tessera.grad_of = "c"})
// CHECK: %[[B:.*]] = tessera.param lora_a "b"
// CHECK-NEXT: %[[Y:.*]] = tessera.binary add %{{.*}}, %[[B]]
// CHECK-NEXT: %[[C:.*]] = tessera.param lora_b "c"
// CHECK: %[[G:.*]] = tessera.broadcast %{{.*}} : tensor<f32> -> tensor<2x3x4xf32>
// CHECK-NEXT: %[[GY:.*]] = tessera.binary mul %[[G]], %[[C]] : (tensor<2x3x4xf32>, tensor<3x1xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT: %[[GC:.*]] = tessera.binary mul %[[G]], %[[Y]] : (tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT: %[[RC:.*]] = tessera.reduce sum %[[GC]] {axes = array<i64: 0, 2>} : tensor<2x3x4xf32> -> tensor<3xf32>
// CHECK-NEXT: %[[GCC:.*]] = tessera.reshape %[[RC]] : tensor<3xf32> -> tensor<3x1xf32>
// CHECK-NEXT: %[[GB:.*]] = tessera.reduce sum %[[GY]] {axes = array<i64: 0, 1>} : tensor<2x3x4xf32> -> tensor<4xf32>
// CHECK-NEXT: return %{{.*}}, %[[GB]], %[[GCC]] : tensor<f32>, tensor<4xf32>, tensor<3x1xf32>
func.func @loss() -> tensor<f32> {
  %x = tessera.param frozen "x" : tensor<2x3x4xf32>
  %b = tessera.param lora_a "b" : tensor<4xf32>
  %y = tessera.binary add %x, %b : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  %c = tessera.param lora_b "c" : tensor<3x1xf32>
  %z = tessera.binary mul %y, %c : (tensor<2x3x4xf32>, tensor<3x1xf32>) -> tensor<2x3x4xf32>
  %l = tessera.reduce sum %z {axes = array<i64: 0, 1, 2>} : tensor<2x3x4xf32> -> tensor<f32>
  return %l : tensor<f32>
}
