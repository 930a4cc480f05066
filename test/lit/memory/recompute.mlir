// tessera-recompute: the backward sweep of @loss_grad recomputes each layer's
// internal values from the kept layer input instead of reading the forward's.
// RUN: tessera-opt %s --tessera-autodiff --tessera-recompute | FileCheck %s

// Layer 0 is x1 = x0 + tanh(x0 * a * 2) with an unmarked op inside it (the
// scale, as tessera-inject-lora leaves LoRA branches): it joins layer 0 since
// its only user is there. x1 is the layer's output and is kept.
// CHECK-LABEL: func.func @loss_grad
// CHECK: %[[X0:.*]] = tessera.gather
// CHECK: %[[A:.*]] = tessera.param lora_a "l.lora_A"
// CHECK: %[[T0:.*]] = tessera.binary mul %[[X0]], %[[A]] {tessera.layer = 0 : i64}
// CHECK: %[[S0:.*]] = tessera.binary mul %[[T0]], %[[TWO:.*]] :
// CHECK: %[[U0:.*]] = tessera.unary tanh %[[S0]] {tessera.layer = 0 : i64}
// CHECK: %[[X1:.*]] = tessera.binary add %[[X0]], %[[U0]] {tessera.layer = 0 : i64}
// CHECK: %[[U1:.*]] = tessera.unary tanh %{{.*}} {tessera.layer = 1 : i64}
// CHECK: %[[X2:.*]] = tessera.binary add %[[X1]], %[[U1]] {tessera.layer = 1 : i64}
// CHECK: tessera.cross_entropy
// Backward of layer 1: its tanh is recomputed from the kept x1.
// CHECK: %[[RT1:.*]] = tessera.binary mul %[[X1]], %[[A]] {tessera.layer = 1 : i64}
// CHECK-NEXT: %[[RU1:.*]] = tessera.unary tanh %[[RT1]] {tessera.layer = 1 : i64}
// CHECK-NEXT: tessera.binary mul %[[RU1]], %[[RU1]]
// Backward of layer 0: recomputed from the kept x0, unmarked scale included.
// CHECK: %[[RT0:.*]] = tessera.binary mul %[[X0]], %[[A]] {tessera.layer = 0 : i64}
// CHECK-NEXT: %[[RS0:.*]] = tessera.binary mul %[[RT0]], %[[TWO]] :
// CHECK-NEXT: %[[RU0:.*]] = tessera.unary tanh %[[RS0]] {tessera.layer = 0 : i64}
// CHECK-NEXT: tessera.binary mul %[[RU0]], %[[RU0]]
// The forward's internal values are no longer used after the forward.
// CHECK-NOT: %[[U0]]{{[,) ]}}
// CHECK: return
func.func @loss(%ids: tensor<1x3xi32>, %labels: tensor<1x3xi32>) -> tensor<f32> {
  %emb = tessera.param frozen "embed.weight" : tensor<7x4xf32>
  %x0 = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<7x4xf32>, tensor<1x3xi32>) -> tensor<1x3x4xf32>
  %a = tessera.param lora_a "l.lora_A" : tensor<4xf32>
  %two = tessera.constant dense<2.0> : tensor<f32>
  %t0 = tessera.binary mul %x0, %a {tessera.layer = 0 : i64} : (tensor<1x3x4xf32>, tensor<4xf32>) -> tensor<1x3x4xf32>
  %s0 = tessera.binary mul %t0, %two : (tensor<1x3x4xf32>, tensor<f32>) -> tensor<1x3x4xf32>
  %u0 = tessera.unary tanh %s0 {tessera.layer = 0 : i64} : tensor<1x3x4xf32>
  %x1 = tessera.binary add %x0, %u0 {tessera.layer = 0 : i64} : (tensor<1x3x4xf32>, tensor<1x3x4xf32>) -> tensor<1x3x4xf32>
  %t1 = tessera.binary mul %x1, %a {tessera.layer = 1 : i64} : (tensor<1x3x4xf32>, tensor<4xf32>) -> tensor<1x3x4xf32>
  %u1 = tessera.unary tanh %t1 {tessera.layer = 1 : i64} : tensor<1x3x4xf32>
  %x2 = tessera.binary add %x1, %u1 {tessera.layer = 1 : i64} : (tensor<1x3x4xf32>, tensor<1x3x4xf32>) -> tensor<1x3x4xf32>
  %w = tessera.param frozen "lm_head.weight" : tensor<7x4xf32>
  %logits = tessera.matmul %x2, %w {transpose_rhs = true} : (tensor<1x3x4xf32>, tensor<7x4xf32>) -> tensor<1x3x7xf32>
  %ce = tessera.cross_entropy %logits, %labels : (tensor<1x3x7xf32>, tensor<1x3xi32>) -> tensor<f32>
  return %ce : tensor<f32>
}
