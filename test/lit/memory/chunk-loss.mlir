// tessera-chunk-loss: the lm_head matmul + cross_entropy of @loss become one
// matmul + cross_entropy per chunk of token rows over shifted targets, summed
// as (chunk mean * chunk count) / max(total count, 1).
// RUN: tessera-opt %s --tessera-chunk-loss="chunk-tokens=3" | FileCheck %s
// The logits (2 x 4 rows x 7 x 4 bytes = 224 bytes) fit a 224-byte budget: unchanged.
// RUN: tessera-opt %s --tessera-chunk-loss="budget-bytes=224" | FileCheck %s --check-prefix=FITS
// A 100-byte budget holds 3 rows of 7 logits: 3 balanced chunks of 3, 3, 2 rows.
// RUN: tessera-opt %s --tessera-chunk-loss="budget-bytes=100" | FileCheck %s --check-prefix=BUDGET
// A floor of 4 token rows where a chunk of them fits max-chunk-bytes (4 x 28 = 112 bytes): 2 chunks of 4 rows.
// RUN: tessera-opt %s --tessera-chunk-loss="budget-bytes=100 min-chunk-tokens=4 max-chunk-bytes=112" | FileCheck %s --check-prefix=FLOOR
// A floor whose chunk would not fit max-chunk-bytes goes as far as it fits: 3 rows (84 bytes), as the budget's.
// RUN: tessera-opt %s --tessera-chunk-loss="budget-bytes=100 min-chunk-tokens=6 max-chunk-bytes=100" | FileCheck %s --check-prefix=BUDGET
// A floor of all 8 rows: no chunks.
// RUN: tessera-opt %s --tessera-chunk-loss="budget-bytes=100 min-chunk-tokens=8 max-chunk-bytes=1000" | FileCheck %s --check-prefix=FITS

// CHECK-LABEL: func.func @loss
// CHECK: %[[W:.*]] = tessera.param frozen "lm_head.weight" : tensor<7x5xf32>
// CHECK: %[[H2:.*]] = tessera.reshape %{{.*}} : tensor<2x4x5xf32> -> tensor<8x5xf32>
// Targets: labels[:, 1:] then ignore_index at the end of each sequence.
// CHECK: %[[NEXT:.*]] = tessera.slice %arg1 {limits = array<i64: 2, 4>, starts = array<i64: 0, 1>, strides = array<i64: 1, 1>} : tensor<2x4xi32> -> tensor<2x3xi32>
// CHECK: %[[PAD:.*]] = tessera.constant dense<-100> : tensor<2x1xi32>
// CHECK: %[[SH:.*]] = tessera.concat %[[NEXT]], %[[PAD]] {axis = 1 : i64} : (tensor<2x3xi32>, tensor<2x1xi32>) -> tensor<2x4xi32>
// CHECK: %[[T:.*]] = tessera.reshape %[[SH]] : tensor<2x4xi32> -> tensor<8xi32>
// CHECK: %[[TF:.*]] = tessera.cast %[[T]] : tensor<8xi32> -> tensor<8xf32>
// CHECK: %[[VALID:.*]] = tessera.binary mul
// CHECK: %[[TOTAL:.*]] = tessera.reduce sum %[[VALID]] {axes = array<i64: 0>} : tensor<8xf32> -> tensor<f32>
// CHECK: %[[DENOM:.*]] = tessera.binary max %[[TOTAL]]
// Chunk 0: rows 0..2.
// CHECK: %[[V0:.*]] = tessera.slice %[[VALID]] {limits = array<i64: 3>, starts = array<i64: 0>
// CHECK: %[[C0:.*]] = tessera.reduce sum %[[V0]]
// CHECK: %[[H0:.*]] = tessera.slice %[[H2]] {limits = array<i64: 3, 5>, starts = array<i64: 0, 0>
// CHECK: %[[L0:.*]] = tessera.matmul %[[H0]], %[[W]] {transpose_rhs = true} : (tensor<3x5xf32>, tensor<7x5xf32>) -> tensor<3x7xf32>
// CHECK: %[[T0:.*]] = tessera.slice %[[T]] {limits = array<i64: 3>, starts = array<i64: 0>
// CHECK: %[[M0:.*]] = tessera.cross_entropy %[[L0]], %[[T0]] {shift = false} : (tensor<3x7xf32>, tensor<3xi32>) -> tensor<f32>
// CHECK: %[[P0:.*]] = tessera.binary mul %[[M0]], %[[C0]]
// Chunk 1: rows 3..5.
// CHECK: tessera.matmul %{{.*}}, %[[W]] {transpose_rhs = true} : (tensor<3x5xf32>, tensor<7x5xf32>) -> tensor<3x7xf32>
// CHECK: %[[M1:.*]] = tessera.cross_entropy
// CHECK: %[[P1:.*]] = tessera.binary mul %[[M1]]
// CHECK: %[[S1:.*]] = tessera.binary add %[[P0]], %[[P1]]
// Chunk 2: rows 6..7.
// CHECK: tessera.slice %[[H2]] {limits = array<i64: 8, 5>, starts = array<i64: 6, 0>
// CHECK: tessera.matmul %{{.*}}, %[[W]] {transpose_rhs = true} : (tensor<2x5xf32>, tensor<7x5xf32>) -> tensor<2x7xf32>
// CHECK: %[[M2:.*]] = tessera.cross_entropy %{{.*}} {shift = false} : (tensor<2x7xf32>, tensor<2xi32>) -> tensor<f32>
// CHECK: %[[P2:.*]] = tessera.binary mul %[[M2]]
// CHECK: %[[S2:.*]] = tessera.binary add %[[S1]], %[[P2]]
// CHECK: %[[LOSS:.*]] = tessera.binary div %[[S2]], %[[DENOM]]
// CHECK-NOT: tessera.cross_entropy
// CHECK: return %[[LOSS]] : tensor<f32>

// FITS-NOT: shift = false
// FITS: tessera.cross_entropy %{{.*}}, %arg1 : (tensor<2x4x7xf32>, tensor<2x4xi32>) -> tensor<f32>

// BUDGET-COUNT-2: tessera.cross_entropy %{{.*}} {shift = false} : (tensor<3x7xf32>, tensor<3xi32>) -> tensor<f32>
// BUDGET: tessera.cross_entropy %{{.*}} {shift = false} : (tensor<2x7xf32>, tensor<2xi32>) -> tensor<f32>

// FLOOR-LABEL: func.func @loss
// FLOOR-COUNT-2: tessera.cross_entropy %{{.*}} {shift = false} : (tensor<4x7xf32>, tensor<4xi32>) -> tensor<f32>
// FLOOR-NOT: tessera.cross_entropy
func.func @loss(%ids: tensor<2x4xi32>, %labels: tensor<2x4xi32>) -> tensor<f32> {
  %emb = tessera.param frozen "embed.weight" : tensor<7x5xf32>
  %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<7x5xf32>, tensor<2x4xi32>) -> tensor<2x4x5xf32>
  %w = tessera.param frozen "lm_head.weight" : tensor<7x5xf32>
  %logits = tessera.matmul %h, %w {transpose_rhs = true} : (tensor<2x4x5xf32>, tensor<7x5xf32>) -> tensor<2x4x7xf32>
  %ce = tessera.cross_entropy %logits, %labels : (tensor<2x4x7xf32>, tensor<2x4xi32>) -> tensor<f32>
  return %ce : tensor<f32>
}
