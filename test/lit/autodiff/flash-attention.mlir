// flash_attention: one flash_attention_grad from q, k, v, the saved result
// and lse and the result's gradient; only the active operands (here q and v,
// LoRA factors; k is frozen) take its gradients, and no softmax is built.
// RUN: tessera-opt %s --tessera-autodiff | FileCheck %s

// CHECK-LABEL: func.func @loss_grad() -> (tensor<f32>, tensor<1x4x3x8xf32> {tessera.grad_of = "q"}, tensor<1x2x5x8xf32> {tessera.grad_of = "v"})
// CHECK: %[[Q:.*]] = tessera.param lora_a "q"
// CHECK: %[[K:.*]] = tessera.param frozen "k"
// CHECK: %[[V:.*]] = tessera.param lora_b "v"
// CHECK: %[[M:.*]] = tessera.param frozen "mask"
// CHECK: %[[A:[^,]*]], %[[AL:[^ ]*]] = tessera.flash_attention %[[Q]], %[[K]], %[[V]] mask %[[M]]
// CHECK-NOT: tessera.softmax
// CHECK: %[[GQ:[^,]*]], %{{[^,]*}}, %[[GV:[^ ]*]] = tessera.flash_attention_grad %[[Q]], %[[K]], %[[V]], %[[A]], %[[AL]], %{{.*}} mask %[[M]] {kv_groups = 2 : i64, scale = 1.250000e-01 : f64}
// CHECK-NOT: tessera.softmax
// CHECK: return %{{.*}}, %[[GQ]], %[[GV]] :
func.func @loss() -> tensor<f32> {
  %q = tessera.param lora_a "q" : tensor<1x4x3x8xf32>
  %k = tessera.param frozen "k" : tensor<1x2x5x8xf32>
  %v = tessera.param lora_b "v" : tensor<1x2x5x8xf32>
  %mask = tessera.param frozen "mask" : tensor<3x5xf32>
  %a:2 = tessera.flash_attention %q, %k, %v mask %mask {scale = 0.125 : f64, kv_groups = 2 : i64} : (tensor<1x4x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<3x5xf32>) -> (tensor<1x4x3x8xf32>, tensor<1x4x3xf32>)
  %l = tessera.reduce mean %a#0 {axes = array<i64: 0, 1, 2, 3>} : tensor<1x4x3x8xf32> -> tensor<f32>
  return %l : tensor<f32>
}
