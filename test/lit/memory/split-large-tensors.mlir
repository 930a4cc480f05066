// tessera-split-large-tensors: a frozen weight over max-bytes becomes row
// tiles within it, and its uses per-tile ops: gathers that read zeros outside
// their rows (summed), x W^T products concatenated along the features, x W
// products of column slices of x (summed).
// RUN: tessera-opt %s --split-input-file --tessera-split-large-tensors="max-bytes=64" | FileCheck %s
// With 2-byte storage (f16 / bf16 plans) rows of 10 bytes, 6 per tile: two
// balanced tiles of 4 and 3 rows.
// RUN: tessera-opt %s --split-input-file --tessera-split-large-tensors="max-bytes=64 element-bytes=2" | FileCheck %s --check-prefix=HALF
// Under the limit nothing changes.
// RUN: tessera-opt %s --split-input-file --tessera-split-large-tensors="max-bytes=1000" | FileCheck %s --check-prefix=FITS

// A tied 7 x 5 f32 table (140 bytes; rows of 20 bytes, 3 per 64-byte tile):
// tiles of rows 0-2, 3-5 and 6.
// CHECK-LABEL: func.func @loss
// CHECK-DAG: %[[W0:.*]] = tessera.param frozen "embed.weight" {rows = array<i64: 0, 3>} : tensor<3x5xf32>
// CHECK-DAG: %[[W1:.*]] = tessera.param frozen "embed.weight" {rows = array<i64: 3, 6>} : tensor<3x5xf32>
// CHECK-DAG: %[[W2:.*]] = tessera.param frozen "embed.weight" {rows = array<i64: 6, 7>} : tensor<1x5xf32>
// CHECK: %[[G0:.*]] = tessera.gather %[[W0]][%arg0] {tessera.layer = 0 : i64, tile = array<i64: 0, 7>} : (tensor<3x5xf32>, tensor<2x4xi32>) -> tensor<2x4x5xf32>
// CHECK: %[[G1:.*]] = tessera.gather %[[W1]][%arg0] {tessera.layer = 0 : i64, tile = array<i64: 3, 7>}
// CHECK: %[[G2:.*]] = tessera.gather %[[W2]][%arg0] {tessera.layer = 0 : i64, tile = array<i64: 6, 7>} : (tensor<1x5xf32>, tensor<2x4xi32>) -> tensor<2x4x5xf32>
// CHECK: %[[S1:.*]] = tessera.binary add %[[G0]], %[[G1]]
// CHECK: %[[H:.*]] = tessera.binary add %[[S1]], %[[G2]]
// CHECK: %[[L0:.*]] = tessera.matmul %[[H]], %[[W0]] {transpose_rhs = true} : (tensor<2x4x5xf32>, tensor<3x5xf32>) -> tensor<2x4x3xf32>
// CHECK: %[[L1:.*]] = tessera.matmul %[[H]], %[[W1]] {transpose_rhs = true}
// CHECK: %[[L2:.*]] = tessera.matmul %[[H]], %[[W2]] {transpose_rhs = true} : (tensor<2x4x5xf32>, tensor<1x5xf32>) -> tensor<2x4x1xf32>
// CHECK: %[[L:.*]] = tessera.concat %[[L0]], %[[L1]], %[[L2]] {axis = 2 : i64} : (tensor<2x4x3xf32>, tensor<2x4x3xf32>, tensor<2x4x1xf32>) -> tensor<2x4x7xf32>
// CHECK: tessera.cross_entropy %[[L]], %arg1
// CHECK-NOT: tessera.param frozen "embed.weight" :

// HALF-LABEL: func.func @loss
// HALF-DAG: tessera.param frozen "embed.weight" {rows = array<i64: 0, 4>} : tensor<4x5xf32>
// HALF-DAG: tessera.param frozen "embed.weight" {rows = array<i64: 4, 7>} : tensor<3x5xf32>

// FITS-LABEL: func.func @loss
// FITS-NOT: rows =
// FITS: tessera.gather %{{.*}}[%arg0] {tessera.layer = 0 : i64} :
func.func @loss(%ids: tensor<2x4xi32>, %labels: tensor<2x4xi32>) -> tensor<f32> {
  %emb = tessera.param frozen "embed.weight" : tensor<7x5xf32>
  %h = tessera.gather %emb[%ids] {axis = 0 : i64, tessera.layer = 0 : i64} : (tensor<7x5xf32>, tensor<2x4xi32>) -> tensor<2x4x5xf32>
  %logits = tessera.matmul %h, %emb {transpose_rhs = true} : (tensor<2x4x5xf32>, tensor<7x5xf32>) -> tensor<2x4x7xf32>
  %ce = tessera.cross_entropy %logits, %labels : (tensor<2x4x7xf32>, tensor<2x4xi32>) -> tensor<f32>
  return %ce : tensor<f32>
}

// -----

// x W with W [K = 8, N = 4] (128 bytes; rows of 16 bytes, 4 per tile): the
// contraction in two halves, x's columns sliced to match.
// CHECK-LABEL: func.func @contraction
// CHECK-DAG: %[[A:.*]] = tessera.param frozen "w" {rows = array<i64: 0, 4>} : tensor<4x4xf32>
// CHECK-DAG: %[[B:.*]] = tessera.param frozen "w" {rows = array<i64: 4, 8>} : tensor<4x4xf32>
// CHECK: %[[X0:.*]] = tessera.slice %arg0 {limits = array<i64: 3, 4>, starts = array<i64: 0, 0>, strides = array<i64: 1, 1>} : tensor<3x8xf32> -> tensor<3x4xf32>
// CHECK: %[[P0:.*]] = tessera.matmul %[[X0]], %[[A]] : (tensor<3x4xf32>, tensor<4x4xf32>) -> tensor<3x4xf32>
// CHECK: %[[X1:.*]] = tessera.slice %arg0 {limits = array<i64: 3, 8>, starts = array<i64: 0, 4>, strides = array<i64: 1, 1>}
// CHECK: %[[P1:.*]] = tessera.matmul %[[X1]], %[[B]]
// CHECK: %[[Y:.*]] = tessera.binary add %[[P0]], %[[P1]]
// CHECK: return %[[Y]]
func.func @contraction(%x: tensor<3x8xf32>) -> tensor<3x4xf32> {
  %w = tessera.param frozen "w" : tensor<8x4xf32>
  %y = tessera.matmul %x, %w : (tensor<3x8xf32>, tensor<8x4xf32>) -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}
