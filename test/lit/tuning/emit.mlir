// tessera-write-tuning-plan: one problem per distinct (op, attributes,
// types) of what the programs run, its candidates from the profile's search
// space with the op's own config first (the rules', or one injected before
// tessera-select-kernel-configs), a reference kernel, and nothing for dead ops.
// RUN: tessera-opt %s --tessera-select-kernel-configs=profile=%repo/autotune/profiles/lavapipe.json --tessera-write-tuning-plan="output=%t.ttune candidates=6 model=emit.mlir" -o /dev/null
// RUN: tessera-rt tune %t.ttune --list | FileCheck %s
// RUN: tessera-rt tune %t.ttune --list --families softmax,elementwise | FileCheck %s --check-prefix=FAMILIES
// The default profile's limits (128 threads per workgroup) bound the space.
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-write-tuning-plan="output=%t.default.ttune candidates=40" -o /dev/null
// RUN: tessera-rt tune %t.default.ttune --list --families matmul | FileCheck %s --check-prefix=DEFAULT

module {
  func.func @loss(%ids: tensor<2x4xi32>, %labels: tensor<2x4xi32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<2x100x64xf32>
    %w = tessera.param frozen "w" : tensor<64x96xf32>
    %y = tessera.matmul %x, %w : (tensor<2x100x64xf32>, tensor<64x96xf32>) -> tensor<2x100x96xf32>
    // The same problem again: counted, not repeated.
    %y2 = tessera.matmul %x, %w : (tensor<2x100x64xf32>, tensor<64x96xf32>) -> tensor<2x100x96xf32>
    %s0 = tessera.softmax %y : tensor<2x100x96xf32>
    // An injected config is the problem's baseline (c0).
    %e = tessera.unary exp %s0 {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 96>} : tensor<2x100x96xf32>
    %e2 = tessera.binary add %e, %y2 : (tensor<2x100x96xf32>, tensor<2x100x96xf32>) -> tensor<2x100x96xf32>
    %s = tessera.reduce sum %e2 {axes = array<i64: 0, 1, 2>} : tensor<2x100x96xf32> -> tensor<f32>
    // Dead: no kernel, no problem.
    %dead = tessera.unary tanh %y : tensor<2x100x96xf32>
    return %s : tensor<f32>
  }
}

// CHECK: tuning plan {{.*}}: model emit.mlir, compiled by tessera {{.*}} with profile 'lavapipe', 5 problems
// CHECK: problem 0: matmul x2, M=200 N=96 K=64 f32
// CHECK-NEXT: key: matmul {transpose_lhs = false, transpose_rhs = false} (tensor<2x100x64xf32>, tensor<64x96xf32>) -> tensor<2x100x96xf32>
// CHECK-NEXT: reference: direct 8x8x16 t1x1 s1
// CHECK-NEXT: c0 rule: direct 32x32x16 t4x4 s1
// CHECK-NEXT: c1 seed default: tiled 64x64x16 t4x8 s1
// CHECK-NEXT: c2 seed nvidia: tiled 64x64x16 t4x4 s1
// CHECK-NEXT: c3 space:
// CHECK-NEXT: c4 space:
// CHECK-NEXT: c5 space:
// CHECK-NEXT: problem 1: softmax x1, rows=200 len=96 f32
// CHECK-NEXT: key: softmax (tensor<2x100x96xf32>) -> tensor<2x100x96xf32>
// CHECK-NEXT: reference: serial 64
// CHECK-NEXT: c0 rule: workgroup 64
// CHECK: problem 2: elementwise x1, n=19200 f32
// CHECK-NEXT: key: unary {fn = #tessera<unary_fn exp>} (tensor<2x100x96xf32>) -> tensor<2x100x96xf32>
// CHECK-NEXT: reference: wg 64
// CHECK-NEXT: c0 rule: wg 96
// CHECK-NEXT: c1 seed default: wg 128
// CHECK-NEXT: c2 seed lavapipe-tuned: wg 256
// CHECK: problem 3: elementwise x1, n=19200 f32
// CHECK-NEXT: key: binary {fn = #tessera<binary_fn add>}
// CHECK: problem 4: reduce x1, rows=1 len=19200 f32
// CHECK-NOT: tanh

// FAMILIES-NOT: matmul x2
// FAMILIES: problem 1: softmax
// FAMILIES: problem 2: elementwise
// FAMILIES: problem 3: elementwise
// FAMILIES-NOT: problem 4

// Nothing over the default's 128 threads per workgroup: lavapipe's rule is a
// seed, nvidia's (256 threads) is not, nor 16x16 tiles of one output per thread.
// DEFAULT: c0 rule: tiled 64x64x16 t4x8 s1
// DEFAULT-NEXT: c1 seed {{lavapipe(-tuned)?}}: direct 32x32x16 t4x4 s1
// DEFAULT-NOT: nvidia
// DEFAULT-NOT: 16x16x16 t1x1
