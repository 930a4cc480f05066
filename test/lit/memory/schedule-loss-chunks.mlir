// tessera-schedule-loss-chunks: after autodiff each chunk's cross_entropy_grad
// (with its scalar seed) and the matmul that consumes it follow the chunk's
// cross_entropy at once, so a chunk's [rows x vocab] logits and their gradient
// die before the next chunk's logits are made.
// RUN: tessera-opt %s --tessera-chunk-loss="chunk-tokens=4" --tessera-autodiff --tessera-schedule-loss-chunks | FileCheck %s
// Without the schedule, autodiff's reverse order keeps both chunks' logits alive.
// RUN: tessera-opt %s --tessera-chunk-loss="chunk-tokens=4" --tessera-autodiff | FileCheck %s --check-prefix=UNSCHEDULED

// CHECK-LABEL: func.func @loss_grad
// CHECK: %[[L0:.*]] = tessera.matmul %{{.*}}, %[[W:.*]] {transpose_rhs = true} : (tensor<4x5xf32>, tensor<7x5xf32>) -> tensor<4x7xf32>
// CHECK: %[[M0:.*]] = tessera.cross_entropy %[[L0]], %[[T0:.*]] {shift = false}
// CHECK-NEXT: %[[ONE:.*]] = tessera.constant dense<1.000000e+00> : tensor<f32>
// CHECK-NEXT: %[[G:.*]] = tessera.binary div %[[ONE]], %{{.*}} : (tensor<f32>, tensor<f32>) -> tensor<f32>
// CHECK-NEXT: %[[S0:.*]] = tessera.binary mul %[[G]], %{{.*}} : (tensor<f32>, tensor<f32>) -> tensor<f32>
// CHECK-NEXT: %[[D0:.*]] = tessera.cross_entropy_grad %[[L0]], %[[T0]], %[[S0]] {shift = false}
// CHECK-NEXT: %{{.*}} = tessera.matmul %[[D0]], %[[W]] : (tensor<4x7xf32>, tensor<7x5xf32>) -> tensor<4x5xf32>
// CHECK: %[[L1:.*]] = tessera.matmul %{{.*}}, %[[W]] {transpose_rhs = true} : (tensor<4x5xf32>, tensor<7x5xf32>) -> tensor<4x7xf32>
// CHECK: %[[M1:.*]] = tessera.cross_entropy %[[L1]], %[[T1:.*]] {shift = false}
// CHECK-NEXT: %[[S1:.*]] = tessera.binary mul %[[G]], %{{.*}} : (tensor<f32>, tensor<f32>) -> tensor<f32>
// CHECK-NEXT: %[[D1:.*]] = tessera.cross_entropy_grad %[[L1]], %[[T1]], %[[S1]] {shift = false}
// CHECK-NEXT: %{{.*}} = tessera.matmul %[[D1]], %[[W]] : (tensor<4x7xf32>, tensor<7x5xf32>) -> tensor<4x5xf32>
// CHECK-LABEL: return

// UNSCHEDULED-LABEL: func.func @loss_grad
// UNSCHEDULED-COUNT-2: tessera.cross_entropy %{{.*}} {shift = false}
// UNSCHEDULED-NOT: tessera.matmul %{{.*}} {transpose_rhs = true} : (tensor<4x5xf32>, tensor<7x5xf32>)
// UNSCHEDULED-COUNT-2: tessera.cross_entropy_grad
func.func @loss(%ids: tensor<2x4xi32>, %labels: tensor<2x4xi32>) -> tensor<f32> {
  %emb = tessera.param frozen "embed.weight" : tensor<7x5xf32>
  %g = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<7x5xf32>, tensor<2x4xi32>) -> tensor<2x4x5xf32>
  %a = tessera.param lora_a "x.lora_A" : tensor<5xf32>
  %h = tessera.binary add %g, %a : (tensor<2x4x5xf32>, tensor<5xf32>) -> tensor<2x4x5xf32>
  %w = tessera.param frozen "lm_head.weight" : tensor<7x5xf32>
  %logits = tessera.matmul %h, %w {transpose_rhs = true} : (tensor<2x4x5xf32>, tensor<7x5xf32>) -> tensor<2x4x7xf32>
  %ce = tessera.cross_entropy %logits, %labels : (tensor<2x4x7xf32>, tensor<2x4xi32>) -> tensor<f32>
  return %ce : tensor<f32>
}
