// tessera-fuse-matmul-epilogue: what folds into a product (the scale by a
// constant splat, the add of a tensor of the product's shape, both in a
// chain, the shorter contraction of two products taking the other as its
// addend, bookkeeping attributes kept) and what does not (a product read
// twice, a scale that is no constant, a broadcast addend, a scale after the
// add).
// RUN: tessera-opt %s --tessera-fuse-matmul-epilogue | FileCheck %s
// The kernels: one per fused product, no binary kernel left for the folded
// ops (the numerics are in test/unit/lowering/KernelNumericsEpilogueTest.cpp).
// RUN: tessera-opt %s --tessera-fuse-matmul-epilogue --tessera-select-kernel-configs --tessera-lower-to-kernels | FileCheck %s --check-prefix=KERNELS
// RUN: tessera-opt %s --tessera-fuse-matmul-epilogue --tessera-select-kernel-configs --tessera-lower-to-kernels | FileCheck %s --check-prefix=MATMULS

// The LoRA forward: (x A^T) s, then (xs B^T) + base. The base product has
// K = 8, the up product K = 2: the up product takes the base as its addend.
// CHECK-LABEL: func.func @loss(
// CHECK-DAG: %[[X:.*]] = tessera.param frozen "x"
// CHECK-DAG: %[[W:.*]] = tessera.param frozen "w"
// CHECK-DAG: %[[A:.*]] = tessera.param lora_a "a"
// CHECK-DAG: %[[B:.*]] = tessera.param lora_b "b"
// CHECK: %[[Y:.*]] = tessera.matmul %[[X]], %[[W]] {tessera.layer = 3 : i64, transpose_rhs = true}
// CHECK: %[[XS:.*]] = tessera.fused_matmul %[[X]], %[[A]] {alpha = 2.000000e+00 : f64, tessera.layer = 3 : i64, transpose_rhs = true} : (tensor<2x4x8xbf16>, tensor<2x8xf32>) -> tensor<2x4x2xbf16>
// CHECK: %[[Y2:.*]] = tessera.fused_matmul %[[XS]], %[[B]] plus %[[Y]] {tessera.layer = 3 : i64, transpose_rhs = true} : (tensor<2x4x2xbf16>, tensor<16x2xf32>), tensor<2x4x16xbf16> -> tensor<2x4x16xbf16>
//
// Scale then add chain into one (alpha 0.5, splat of the full shape, the
// constant on the left).
// CHECK: %[[G:.*]] = tessera.fused_matmul %[[Y2]], %[[Y2]] plus %[[X2:.*]] {alpha = 5.000000e-01 : f64, transpose_lhs = true} : (tensor<2x4x16xbf16>, tensor<2x4x16xbf16>), tensor<2x16x16xf32> -> tensor<2x16x16xf32>
//
// A product read twice stays a matmul, and so do its scale and add.
// CHECK: %[[T:.*]] = tessera.matmul %[[G]], %[[G]]
// CHECK: tessera.binary mul %[[T]], %{{.*}}
// CHECK: tessera.binary add %[[T]], %{{.*}}
// A scale by a non-constant, a broadcast addend, a scale after the add.
// CHECK: %[[U:.*]] = tessera.matmul
// CHECK: tessera.binary mul %[[U]], %[[G]]
// CHECK: %[[V:.*]] = tessera.matmul
// CHECK: tessera.binary add %[[V]], %{{.*}} : (tensor<2x16x16xf32>, tensor<16xf32>)
// CHECK: %[[P:.*]] = tessera.fused_matmul %{{.*}}, %{{.*}} plus %{{.*}} :
// CHECK: tessera.binary mul %[[P]], %{{.*}}
// CHECK: return

// Dispatches: the folded ops have no kernel of their own (five binary ops
// remain, the ones left alone above); one dispatch per product.
// KERNELS-COUNT-5: tessera.dispatch @binary_
// KERNELS-NOT: tessera.dispatch @binary_
// MATMULS-COUNT-9: tessera.dispatch @matmul_
// MATMULS-NOT: tessera.dispatch @matmul_

module attributes {tessera.lora = {rank = 2 : i64, alpha = 4.0 : f64}} {
  func.func @loss(%ids: tensor<2x4xi32>, %labels: tensor<2x4xi32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<2x4x8xbf16>
    %w = tessera.param frozen "w" : tensor<16x8xbf16>
    %a = tessera.param lora_a "a" : tensor<2x8xf32>
    %b = tessera.param lora_b "b" : tensor<16x2xf32>
    %y = tessera.matmul %x, %w {transpose_rhs = true, tessera.layer = 3 : i64} : (tensor<2x4x8xbf16>, tensor<16x8xbf16>) -> tensor<2x4x16xbf16>
    %xa = tessera.matmul %x, %a {transpose_rhs = true, tessera.layer = 3 : i64} : (tensor<2x4x8xbf16>, tensor<2x8xf32>) -> tensor<2x4x2xbf16>
    %s = tessera.constant dense<2.0> : tensor<bf16>
    %xs = tessera.binary mul %xa, %s {tessera.layer = 3 : i64} : (tensor<2x4x2xbf16>, tensor<bf16>) -> tensor<2x4x2xbf16>
    %d = tessera.matmul %xs, %b {transpose_rhs = true, tessera.layer = 3 : i64} : (tensor<2x4x2xbf16>, tensor<16x2xf32>) -> tensor<2x4x16xbf16>
    %y2 = tessera.binary add %y, %d {tessera.layer = 3 : i64} : (tensor<2x4x16xbf16>, tensor<2x4x16xbf16>) -> tensor<2x4x16xbf16>

    %x2 = tessera.param frozen "x2" : tensor<2x16x16xf32>
    %g0 = tessera.matmul %y2, %y2 {transpose_lhs = true} : (tensor<2x4x16xbf16>, tensor<2x4x16xbf16>) -> tensor<2x16x16xf32>
    %half = tessera.constant dense<0.5> : tensor<2x16x16xf32>
    %g1 = tessera.binary mul %half, %g0 : (tensor<2x16x16xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %g = tessera.binary add %g1, %x2 : (tensor<2x16x16xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>

    %t = tessera.matmul %g, %g : (tensor<2x16x16xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %c3 = tessera.constant dense<3.0> : tensor<f32>
    %t1 = tessera.binary mul %t, %c3 : (tensor<2x16x16xf32>, tensor<f32>) -> tensor<2x16x16xf32>
    %t2 = tessera.binary add %t, %t1 : (tensor<2x16x16xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>

    %u = tessera.matmul %t2, %g : (tensor<2x16x16xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %u1 = tessera.binary mul %u, %g : (tensor<2x16x16xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %bias = tessera.param frozen "bias" : tensor<16xf32>
    %v = tessera.matmul %u1, %g : (tensor<2x16x16xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %v1 = tessera.binary add %v, %bias : (tensor<2x16x16xf32>, tensor<16xf32>) -> tensor<2x16x16xf32>
    %p = tessera.matmul %v1, %g : (tensor<2x16x16xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %p1 = tessera.binary add %p, %x2 : (tensor<2x16x16xf32>, tensor<2x16x16xf32>) -> tensor<2x16x16xf32>
    %p2 = tessera.binary mul %p1, %c3 : (tensor<2x16x16xf32>, tensor<f32>) -> tensor<2x16x16xf32>

    %emb = tessera.param frozen "lm_head.weight" : tensor<16x16xf32>
    %logits = tessera.matmul %p2, %emb {transpose_rhs = true} : (tensor<2x16x16xf32>, tensor<16x16xf32>) -> tensor<2x16x16xf32>
    %l2 = tessera.slice %logits {starts = array<i64: 0, 0, 0>, limits = array<i64: 2, 4, 16>, strides = array<i64: 1, 1, 1>} : tensor<2x16x16xf32> -> tensor<2x4x16xf32>
    %loss = tessera.cross_entropy %l2, %labels : (tensor<2x4x16xf32>, tensor<2x4xi32>) -> tensor<f32>
    return %loss : tensor<f32>
  }
}
