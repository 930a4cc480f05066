// tessera-recompute-elementwise: a forward elementwise value the backward
// reads is computed again right before its first backward use when its
// operands are alive there anyway; the forward's copy then dies in the
// forward. A SwiGLU MLP: silu(gate) is recomputed from gate (which the
// backward reads for silu's derivative); tanh(y) is kept, as y (a matmul
// result) would otherwise die in the forward.
// RUN: tessera-opt %s --tessera-autodiff --tessera-recompute-elementwise | FileCheck %s
// Without the pass the backward reads the forward's silu.
// RUN: tessera-opt %s --tessera-autodiff | FileCheck %s --check-prefix=KEEP

// CHECK-LABEL: func.func @loss_grad
// CHECK: %[[G:.*]] = tessera.matmul %[[XA:.*]], %[[WG:.*]] {transpose_rhs = true}
// CHECK: %[[U:.*]] = tessera.matmul %[[XA]], %[[WU:.*]] {transpose_rhs = true}
// CHECK: %[[S:.*]] = tessera.unary silu %[[G]]
// CHECK: tessera.binary mul %[[S]], %[[U]]
// CHECK: %[[T:.*]] = tessera.unary tanh
// CHECK: tessera.cross_entropy_grad
// CHECK: tessera.binary mul %[[T]], %[[T]]
// CHECK: %[[DP:.*]] = tessera.matmul
// CHECK: tessera.binary mul %[[DP]], %[[U]]
// CHECK-NEXT: %[[S2:.*]] = tessera.unary silu %[[G]]
// CHECK-NEXT: tessera.binary mul %[[DP]], %[[S2]]
// CHECK-NOT: %[[S]]{{[,) ]}}
// CHECK-NOT: tessera.unary tanh
// CHECK: return

// KEEP-LABEL: func.func @loss_grad
// KEEP: %[[S:.*]] = tessera.unary silu
// KEEP: tessera.cross_entropy_grad
// KEEP-NOT: tessera.unary silu
// KEEP: tessera.binary mul %{{.*}}, %[[S]]
func.func @loss(%ids: tensor<1x3xi32>, %labels: tensor<1x3xi32>) -> tensor<f32> {
  %emb = tessera.param frozen "embed.weight" : tensor<7x4xf32>
  %x0 = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<7x4xf32>, tensor<1x3xi32>) -> tensor<1x3x4xf32>
  %a = tessera.param lora_a "l.lora_A" : tensor<4xf32>
  %xa = tessera.binary mul %x0, %a : (tensor<1x3x4xf32>, tensor<4xf32>) -> tensor<1x3x4xf32>
  %wg = tessera.param frozen "gate.weight" : tensor<6x4xf32>
  %wu = tessera.param frozen "up.weight" : tensor<6x4xf32>
  %wd = tessera.param frozen "down.weight" : tensor<4x6xf32>
  %g = tessera.matmul %xa, %wg {transpose_rhs = true} : (tensor<1x3x4xf32>, tensor<6x4xf32>) -> tensor<1x3x6xf32>
  %u = tessera.matmul %xa, %wu {transpose_rhs = true} : (tensor<1x3x4xf32>, tensor<6x4xf32>) -> tensor<1x3x6xf32>
  %s = tessera.unary silu %g : tensor<1x3x6xf32>
  %p = tessera.binary mul %s, %u : (tensor<1x3x6xf32>, tensor<1x3x6xf32>) -> tensor<1x3x6xf32>
  %y = tessera.matmul %p, %wd {transpose_rhs = true} : (tensor<1x3x6xf32>, tensor<4x6xf32>) -> tensor<1x3x4xf32>
  %t = tessera.unary tanh %y : tensor<1x3x4xf32>
  %x1 = tessera.binary add %x0, %t : (tensor<1x3x4xf32>, tensor<1x3x4xf32>) -> tensor<1x3x4xf32>
  %w = tessera.param frozen "lm_head.weight" : tensor<7x4xf32>
  %logits = tessera.matmul %x1, %w {transpose_rhs = true} : (tensor<1x3x4xf32>, tensor<7x4xf32>) -> tensor<1x3x7xf32>
  %ce = tessera.cross_entropy %logits, %labels : (tensor<1x3x7xf32>, tensor<1x3xi32>) -> tensor<f32>
  return %ce : tensor<f32>
}
