// The gradient of tessera.dropout is the same op (same rate and site, so the
// same mask) applied to the incoming gradient; a rate outside [0, 1) does not verify.
// RUN: tessera-opt %s --tessera-autodiff | FileCheck %s
// RUN: not tessera-opt %S/Inputs/bad-dropout.mlir 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: error: 'tessera.dropout' op rate must be in [0, 1), got 1.5

// CHECK-LABEL: func.func @loss_grad
// CHECK: %[[X:.*]] = tessera.dropout %[[IN:.*]] {rate = 1.000000e-01 : f64, site = 7 : i64} : tensor<2x3xf32>
// CHECK: tessera.dropout %{{.*}} {rate = 1.000000e-01 : f64, site = 7 : i64} : tensor<2x3xf32>
// CHECK-NOT: tessera.dropout
func.func @loss(%ids: tensor<2xi32>, %labels: tensor<2xi32>) -> tensor<f32> {
  %w = tessera.param frozen "w" : tensor<2x3xf32>
  %a = tessera.param lora_a "m.lora_A" : tensor<2x3xf32>
  %h = tessera.binary mul %w, %a : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %d = tessera.dropout %h {rate = 0.1 : f64, site = 7 : i64} : tensor<2x3xf32>
  %e = tessera.unary exp %d : tensor<2x3xf32>
  %s = tessera.reduce sum %e {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x3xf32> -> tensor<f32>
  return %s : tensor<f32>
}
