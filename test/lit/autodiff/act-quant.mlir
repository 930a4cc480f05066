// The gradient of tessera.act_quant is the straight-through estimator: the
// incoming gradient itself (transformers' BitNet ActQuant); `unary round`
// (the generic quantiser) passes zeros.
// RUN: tessera-opt %s --split-input-file --tessera-autodiff | FileCheck %s

// CHECK-LABEL: func.func @loss_grad
// CHECK: %[[W:.*]] = tessera.param frozen "w"
// CHECK: %[[Q:.*]] = tessera.act_quant %{{.*}} : tensor<2x3xf32>
// CHECK: %[[E:.*]] = tessera.unary exp %[[Q]]
// d exp = g * exp(q), which reaches h unchanged, then d/da (w * a) = . * w.
// CHECK: %[[GE:.*]] = tessera.binary mul %{{.*}}, %[[E]]
// CHECK-NEXT: %[[GA:.*]] = tessera.binary mul %[[GE]], %[[W]]
// CHECK-NEXT: return %{{.*}}, %[[GA]]
func.func @loss(%ids: tensor<2xi32>, %labels: tensor<2xi32>) -> tensor<f32> {
  %w = tessera.param frozen "w" : tensor<2x3xf32>
  %a = tessera.param lora_a "m.lora_A" : tensor<2x3xf32>
  %h = tessera.binary mul %w, %a : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %q = tessera.act_quant %h : tensor<2x3xf32>
  %e = tessera.unary exp %q : tensor<2x3xf32>
  %s = tessera.reduce sum %e {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x3xf32> -> tensor<f32>
  return %s : tensor<f32>
}

// -----

// CHECK-LABEL: func.func @loss_grad
// CHECK: tessera.unary round
// CHECK: %[[Z:.*]] = tessera.constant dense<0.000000e+00> : tensor<2x3xf32>
// CHECK-NEXT: %[[GA:.*]] = tessera.binary mul %[[Z]], %{{.*}}
// CHECK-NEXT: return %{{.*}}, %[[GA]]
func.func @loss(%ids: tensor<2xi32>, %labels: tensor<2xi32>) -> tensor<f32> {
  %w = tessera.param frozen "w" : tensor<2x3xf32>
  %a = tessera.param lora_a "m.lora_A" : tensor<2x3xf32>
  %h = tessera.binary mul %w, %a : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %q = tessera.unary round %h : tensor<2x3xf32>
  %s = tessera.reduce sum %q {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x3xf32> -> tensor<f32>
  return %s : tensor<f32>
}
