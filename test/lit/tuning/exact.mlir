// tessera-select-kernel-configs: a profile's exact-shape entries (what
// tessera tune writes) come before its rules; a config injected before the
// pass wins over both; entries that match no kernel are reported in one
// remark and ignored.
// RUN: tessera-opt %s --tessera-select-kernel-configs=profile=%S/Inputs/exact.json --tessera-lower-to-kernels 2>&1 | FileCheck %s
// RUN: tessera-opt %s --tessera-select-kernel-configs=profile=%S/Inputs/exact.json 2>&1 | FileCheck %s --check-prefix=CONFIGS

module {
  func.func @loss(%ids: tensor<2x4xi32>, %labels: tensor<2x4xi32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<2x100x64xf32>
    %w = tessera.param frozen "w" : tensor<64x96xf32>
    %y = tessera.matmul %x, %w : (tensor<2x100x64xf32>, tensor<64x96xf32>) -> tensor<2x100x96xf32>
    %s0 = tessera.softmax %y : tensor<2x100x96xf32>
    %e = tessera.unary exp %s0 {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 96>} : tensor<2x100x96xf32>
    %t = tessera.unary tanh %e : tensor<2x100x96xf32>
    %s = tessera.reduce sum %t {axes = array<i64: 0, 1, 2>} : tensor<2x100x96xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
}

// CHECK: remark: device profile 'exact-test' ({{.*}}exact.json): 1 of 4 exact-shape entries match no kernel here (tuned for another model or shape, or by another compiler version) and are ignored, e.g. 'matmul {transpose_lhs = false, transpose_rhs = false} (tensor<9x9xf32>, tensor<9x9xf32>) -> tensor<9x9xf32>'
// The matmul's entry: 16x32 tiles of 2x2 per thread, 128 threads; 200 x 96 -> 13 x 3 workgroups.
// CHECK: tessera.dispatch @matmul_0 [@x, @w, @eval.v0] workgroups [3, 13, 1]
// The softmax's entry: one thread per row, 32 per workgroup -> 7 workgroups for 200 rows.
// CHECK: tessera.dispatch @softmax_0 [@eval.v0, @eval.v1] workgroups [7, 1, 1]
// The injected 96 wins over the entry's 512: 19200 / 96 = 200 workgroups.
// CHECK: tessera.dispatch @unary_exp_0 [@eval.v1, @eval.v2] workgroups [200, 1, 1]
// tanh has no entry: the rules (the default's 128 threads).
// CHECK: tessera.dispatch @unary_tanh_0 [@eval.v2, @eval.v3] workgroups [150, 1, 1]
// CHECK-LABEL: gpu.func @matmul_0(
// CHECK-SAME: workgroup_size = [128, 1, 1]
// CHECK: memref.alloc() : memref<{{[0-9]+}}xf32, #gpu.address_space<workgroup>>

// CONFIGS: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "exact", kind = tiled, tile = [16, 32, 16], thread = [2, 2], split_k = 1>
// CONFIGS: tessera.softmax {{.*}}#tessera.reduction_config<strategy = serial, workgroup_size = 32>
// CONFIGS: tessera.unary exp {{.*}}#tessera.elementwise_config<workgroup_size = 96>
// CONFIGS: tessera.unary tanh {{.*}}#tessera.elementwise_config<workgroup_size = 128>
