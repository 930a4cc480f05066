// tessera-fuse-attention: tessera.attention becomes tessera.flash_attention
// (same operands and attributes, tessera.layer kept, plus lse), which
// tessera-decompose-fused then leaves alone; the other raised ops still
// decompose.
// RUN: tessera-opt %s --tessera-fuse-attention | FileCheck %s
// RUN: tessera-opt %s --tessera-fuse-attention --tessera-decompose-fused | FileCheck %s --check-prefix=DECOMP

// CHECK-LABEL: func.func @gqa
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x3x8xf32>, %[[K:.*]]: tensor<1x2x5x8xf32>, %[[V:.*]]: tensor<1x2x5x8xf32>, %[[M:.*]]: tensor<1x1x3x5xf32>)
// CHECK-NEXT: %[[A:[^,]*]], %{{.*}} = tessera.flash_attention %[[Q]], %[[K]], %[[V]] mask %[[M]] {kv_groups = 2 : i64, scale = 1.250000e-01 : f64, tessera.layer = 1 : i64} : (tensor<1x4x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x1x3x5xf32>) -> (tensor<1x4x3x8xf32>, tensor<1x4x3xf32>)
// CHECK-NEXT: return %[[A]] :
// CHECK-NOT: tessera.attention
// DECOMP-LABEL: func.func @gqa
// DECOMP-NEXT: tessera.flash_attention
// DECOMP-NEXT: return
func.func @gqa(%q: tensor<1x4x3x8xf32>, %k: tensor<1x2x5x8xf32>, %v: tensor<1x2x5x8xf32>, %m: tensor<1x1x3x5xf32>) -> tensor<1x4x3x8xf32> {
  %y = tessera.attention %q, %k, %v mask %m {scale = 0.125 : f64, kv_groups = 2 : i64, tessera.layer = 1 : i64} : (tensor<1x4x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x1x3x5xf32>) -> tensor<1x4x3x8xf32>
  return %y : tensor<1x4x3x8xf32>
}

// No mask; the other raised ops are untouched by this pass.
// CHECK-LABEL: func.func @plain
// CHECK-NEXT: tessera.rms_norm
// CHECK-NEXT: %[[A:[^,]*]], %{{.*}} = tessera.flash_attention %{{.*}}, %{{.*}}, %{{.*}} {kv_groups = 1 : i64, scale = 5.000000e-01 : f64} : (tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>) -> (tensor<1x2x3x4xf32>, tensor<1x2x3xf32>)
// CHECK-NEXT: return %[[A]] :
// DECOMP-LABEL: func.func @plain
// DECOMP-NOT: tessera.rms_norm
// DECOMP: tessera.flash_attention
// DECOMP-NOT: tessera.softmax
func.func @plain(%x: tensor<1x2x3x4xf32>, %w: tensor<4xf32>) -> tensor<1x2x3x4xf32> {
  %n = tessera.rms_norm %x, %w {eps = 1.0e-6 : f64} : (tensor<1x2x3x4xf32>, tensor<4xf32>) -> tensor<1x2x3x4xf32>
  %y = tessera.attention %n, %n, %n {scale = 0.5 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x4xf32>
  return %y : tensor<1x2x3x4xf32>
}
