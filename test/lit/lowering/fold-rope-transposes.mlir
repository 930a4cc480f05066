// tessera-fold-rope-transposes: the [B, T, H, D] <-> [B, H, T, D] transposes
// around RoPE become the rope's input_permutation / result_permutation (the
// forward's q and k, the backward's dq and dk), composed when both sides
// fold; a transpose read elsewhere, or one that moves the rotated dim, stays.
// RUN: tessera-opt %s --tessera-fold-rope-transposes | FileCheck %s
// (The folded kernels' numerics: KernelNumerics.RopeFoldedTransposes.)

// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[Q:[^:]*]]: tensor<2x5x3x8xf32>
// CHECK-NOT: tessera.transpose
// CHECK: %[[R:.*]] = tessera.rope %[[Q]], %{{.*}}, %{{.*}} {input_permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x5x3x8xf32>, tensor<1x1x5x8xf32>, tensor<1x1x5x8xf32>) -> tensor<2x3x5x8xbf16>
// CHECK-NEXT: return %[[R]]
func.func @forward(%q: tensor<2x5x3x8xf32>, %c: tensor<1x1x5x8xf32>) -> tensor<2x3x5x8xbf16> {
  %t = tessera.transpose %q [0, 2, 1, 3] : tensor<2x5x3x8xf32> -> tensor<2x3x5x8xf32>
  %r = tessera.rope %t, %c, %c : (tensor<2x3x5x8xf32>, tensor<1x1x5x8xf32>, tensor<1x1x5x8xf32>) -> tensor<2x3x5x8xbf16>
  return %r : tensor<2x3x5x8xbf16>
}

// CHECK-LABEL: func.func @backward(
// CHECK-SAME: %[[DQ:[^:]*]]: tensor<2x3x5x8xbf16>
// CHECK: %[[R:.*]] = tessera.rope %[[DQ]], %{{.*}}, %{{.*}} {result_permutation = array<i64: 0, 2, 1, 3>, transposed} : (tensor<2x3x5x8xbf16>, tensor<1x1x5x8xf32>, tensor<1x1x5x8xf32>) -> tensor<2x5x3x8xbf16>
// CHECK-NOT: tessera.transpose
// CHECK: return %[[R]]
func.func @backward(%dq: tensor<2x3x5x8xbf16>, %c: tensor<1x1x5x8xf32>) -> tensor<2x5x3x8xbf16> {
  %r = tessera.rope %dq, %c, %c {transposed} : (tensor<2x3x5x8xbf16>, tensor<1x1x5x8xf32>, tensor<1x1x5x8xf32>) -> tensor<2x3x5x8xbf16>
  %t = tessera.transpose %r [0, 2, 1, 3] : tensor<2x3x5x8xbf16> -> tensor<2x5x3x8xbf16>
  return %t : tensor<2x5x3x8xbf16>
}

// Both sides, the result transpose moving the heads first: composed.
// CHECK-LABEL: func.func @both(
// CHECK: tessera.rope %arg0, %arg1, %arg1 {input_permutation = array<i64: 0, 2, 1, 3>, result_permutation = array<i64: 1, 0, 2, 3>} : (tensor<2x5x3x8xf32>, tensor<1x1x5x8xf32>, tensor<1x1x5x8xf32>) -> tensor<3x2x5x8xf32>
// CHECK-NOT: tessera.transpose
func.func @both(%q: tensor<2x5x3x8xf32>, %c: tensor<1x1x5x8xf32>) -> tensor<3x2x5x8xf32> {
  %t = tessera.transpose %q [0, 2, 1, 3] : tensor<2x5x3x8xf32> -> tensor<2x3x5x8xf32>
  %r = tessera.rope %t, %c, %c : (tensor<2x3x5x8xf32>, tensor<1x1x5x8xf32>, tensor<1x1x5x8xf32>) -> tensor<2x3x5x8xf32>
  %u = tessera.transpose %r [1, 0, 2, 3] : tensor<2x3x5x8xf32> -> tensor<3x2x5x8xf32>
  return %u : tensor<3x2x5x8xf32>
}

// A transpose read again, one of the rotated dim, a rope read twice: unchanged.
// CHECK-LABEL: func.func @kept(
// CHECK: %[[T:.*]] = tessera.transpose %arg0 [0, 2, 1, 3]
// CHECK: tessera.rope %[[T]], %arg1, %arg1 :
// CHECK: %[[S:.*]] = tessera.transpose %arg2 [0, 1, 3, 2]
// CHECK: tessera.rope %[[S]], %arg3, %arg3 :
// CHECK: %[[R2:.*]] = tessera.rope %arg0, %arg4, %arg4 :
// CHECK: tessera.transpose %[[R2]] [0, 2, 1, 3]
func.func @kept(%q: tensor<2x5x3x8xf32>, %c: tensor<1x1x5x8xf32>, %k: tensor<2x3x4x5xf32>, %c2: tensor<5x4xf32>,
                %c3: tensor<3x8xf32>)
    -> (tensor<2x3x5x8xf32>, tensor<2x3x5x8xf32>, tensor<2x3x5x4xf32>, tensor<2x3x5x8xf32>, tensor<2x5x3x8xf32>) {
  %t = tessera.transpose %q [0, 2, 1, 3] : tensor<2x5x3x8xf32> -> tensor<2x3x5x8xf32>
  %r = tessera.rope %t, %c, %c : (tensor<2x3x5x8xf32>, tensor<1x1x5x8xf32>, tensor<1x1x5x8xf32>) -> tensor<2x3x5x8xf32>
  %s = tessera.transpose %k [0, 1, 3, 2] : tensor<2x3x4x5xf32> -> tensor<2x3x5x4xf32>
  %rs = tessera.rope %s, %c2, %c2 : (tensor<2x3x5x4xf32>, tensor<5x4xf32>, tensor<5x4xf32>) -> tensor<2x3x5x4xf32>
  %r2 = tessera.rope %q, %c3, %c3 : (tensor<2x5x3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<2x5x3x8xf32>
  %u = tessera.transpose %r2 [0, 2, 1, 3] : tensor<2x5x3x8xf32> -> tensor<2x3x5x8xf32>
  return %r, %t, %rs, %u, %r2 : tensor<2x3x5x8xf32>, tensor<2x3x5x8xf32>, tensor<2x3x5x4xf32>, tensor<2x3x5x8xf32>, tensor<2x5x3x8xf32>
}

