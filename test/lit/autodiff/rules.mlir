// Gradient rules of masks and data movement.
// RUN: tessera-opt %s --split-input-file --tessera-autodiff | FileCheck %s

// relu: mask y != 0 (cast f32 -> i1) selects the gradient. reduce max: the
// mask x == max (select on x - max != 0) takes the gradient, ties share it.
// CHECK-LABEL: func.func @loss_grad() -> (tensor<f32>, tensor<2x3xf32> {tessera.grad_of = "x"})
// CHECK: %[[Y:.*]] = tessera.unary relu
// CHECK: %[[M:.*]] = tessera.reduce max %[[Y]]
// CHECK: %[[ONE:.*]] = tessera.constant dense<1.000000e+00> : tensor<f32>
// CHECK-NEXT: %[[GB:.*]] = tessera.broadcast %[[ONE]] : tensor<f32> -> tensor<2xf32>
// CHECK-NEXT: %[[GK:.*]] = tessera.reshape %[[GB]] : tensor<2xf32> -> tensor<2x1xf32>
// CHECK-NEXT: %[[MK:.*]] = tessera.reshape %[[M]] : tensor<2xf32> -> tensor<2x1xf32>
// CHECK-NEXT: %[[D:.*]] = tessera.binary sub %[[Y]], %[[MK]]
// CHECK-NEXT: %[[NE:.*]] = tessera.cast %[[D]] : tensor<2x3xf32> -> tensor<2x3xi1>
// CHECK-NEXT: %[[ZERO:.*]] = tessera.constant dense<0.000000e+00> : tensor<f32>
// CHECK-NEXT: %[[ISMAX:.*]] = tessera.select %[[NE]], %[[ZERO]], %[[ONE]]
// CHECK-NEXT: %[[TIES:.*]] = tessera.reduce sum %[[ISMAX]] {axes = array<i64: 1>, keepdims = true}
// CHECK-NEXT: %[[SHARE:.*]] = tessera.binary div %[[GK]], %[[TIES]]
// CHECK-NEXT: %[[GM:.*]] = tessera.select %[[NE]], %[[ZERO]], %[[SHARE]] : (tensor<2x3xi1>, tensor<f32>, tensor<2x1xf32>) -> tensor<2x3xf32>
// CHECK-NEXT: %[[POS:.*]] = tessera.cast %[[Y]] : tensor<2x3xf32> -> tensor<2x3xi1>
// CHECK-NEXT: %[[GX:.*]] = tessera.select %[[POS]], %[[GM]], %[[ZERO]]
// CHECK-NEXT: return %{{.*}}, %[[GX]]

// transpose -> inverse transpose, slice -> pad (interior = stride - 1),
// concat -> slice of the LoRA input only, pad -> strided slice, reshape -> reshape.
// CHECK-LABEL: func.func @loss_grad() -> (tensor<f32>, tensor<4x6xf32> {tessera.grad_of = "x"})
// CHECK: %[[G:.*]] = tessera.reshape %{{.*}} : tensor<48xf32> -> tensor<4x12xf32>
// CHECK-NEXT: %[[GP:.*]] = tessera.slice %[[G]] {limits = array<i64: 3, 12>, starts = array<i64: 0, 1>, strides = array<i64: 1, 2>} : tensor<4x12xf32> -> tensor<3x6xf32>
// CHECK-NEXT: %[[GC:.*]] = tessera.slice %[[GP]] {limits = array<i64: 3, 4>, starts = array<i64: 0, 0>, strides = array<i64: 1, 1>} : tensor<3x6xf32> -> tensor<3x4xf32>
// CHECK-NEXT: %[[GS:.*]] = tessera.pad %[[GC]] {high = array<i64: 0, 0>, interior = array<i64: 1, 0>, low = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<6x4xf32>
// CHECK-NEXT: %[[GT:.*]] = tessera.transpose %[[GS]] [1, 0] : tensor<6x4xf32> -> tensor<4x6xf32>
// CHECK-NEXT: return %{{.*}}, %[[GT]]

func.func @loss() -> tensor<f32> {
  %x = tessera.param lora_a "x" : tensor<2x3xf32>
  %y = tessera.unary relu %x : tensor<2x3xf32>
  %m = tessera.reduce max %y {axes = array<i64: 1>} : tensor<2x3xf32> -> tensor<2xf32>
  %l = tessera.reduce sum %m {axes = array<i64: 0>} : tensor<2xf32> -> tensor<f32>
  return %l : tensor<f32>
}
// -----
func.func @loss() -> tensor<f32> {
  %x = tessera.param lora_a "x" : tensor<4x6xf32>
  %t = tessera.transpose %x [1, 0] : tensor<4x6xf32> -> tensor<6x4xf32>
  %s = tessera.slice %t {starts = array<i64: 1, 0>, limits = array<i64: 6, 4>, strides = array<i64: 2, 1>} : tensor<6x4xf32> -> tensor<3x4xf32>
  %f = tessera.param frozen "f" : tensor<3x2xf32>
  %c = tessera.concat %s, %f {axis = 1 : i64} : (tensor<3x4xf32>, tensor<3x2xf32>) -> tensor<3x6xf32>
  %p = tessera.pad %c {low = array<i64: 0, 1>, high = array<i64: 1, 0>, interior = array<i64: 0, 1>} : tensor<3x6xf32> -> tensor<4x12xf32>
  %r = tessera.reshape %p : tensor<4x12xf32> -> tensor<48xf32>
  %l = tessera.reduce sum %r {axes = array<i64: 0>} : tensor<48xf32> -> tensor<f32>
  return %l : tensor<f32>
}
