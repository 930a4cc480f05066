// Cooperative-matrix matmuls (kind = coopmat): chosen by the nvidia profile for
// products whose operands are both f16 or both bf16, never for f32 or mixed
// operands; converted to SPV_KHR_cooperative_matrix (SPIR-V 1.6); bf16 kernels
// retyped to bf16 in the binary. Debian 12's spirv-val does not know
// cooperative matrices: the trixie lavapipe tests validate and run them.
// RUN: tessera-opt %s --tessera-select-kernel-configs=profile=%repo/autotune/profiles/nvidia.json | FileCheck %s --check-prefix=CONFIG
// RUN: rm -rf %t && tessera-opt %s --tessera-select-kernel-configs=profile=%repo/autotune/profiles/nvidia.json --tessera-lower-to-kernels --tessera-kernels-to-spirv=dump-dir=%t | FileCheck %s --check-prefix=SPIRV
// RUN: %python %S/Inputs/spirv_bf16_check.py %t | FileCheck %s --check-prefix=BINARY

// CONFIG-LABEL: func.func @loss
// Tiles that divide the product: one workgroup-scope matrix per workgroup
// (VK_NV_cooperative_matrix2; mma = tile).
// CONFIG: tessera.matmul %{{.*}}, %{{.*}} {tessera.kernel_config = #tessera.matmul_config<variant = "layers_wg_bf16", kind = coopmat, tile = [128, 128, 64], thread = [32, 8], split_k = 1, mma = [128, 128, 64], subgroups = [2, 4], operands = bf16>, transpose_rhs = true} : (tensor<512x512xbf16>, tensor<512x512xbf16>)
// CONFIG: tessera.matmul %{{.*}}, %{{.*}} {tessera.kernel_config = #tessera.matmul_config<variant = "tc", kind = coopmat, {{.*}} operands = f16>} : (tensor<4x256x64xf16>, tensor<4x64x256xf16>)
// CONFIG: tessera.matmul %{{.*}}, %{{.*}} {tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = tiled
// CONFIG-SAME: (tensor<512x512xf32>, tensor<512x512xf32>)
// CONFIG: tessera.matmul %{{.*}}, %{{.*}} {tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = tiled
// CONFIG-SAME: (tensor<512x512xbf16>, tensor<512x512xf32>)
// A block-quantised weight of the logical type bf16: selected like the rest,
// lowered to the subgroup kernel (16 x 16 x 16 fragments), which dequantises
// it while staging.
// CONFIG: tessera.matmul %{{.*}}, %{{.*}} {tessera.kernel_config = #tessera.matmul_config<variant = "layers_wg_bf16", kind = coopmat
// CONFIG-SAME: (tensor<512x512xbf16>, tensor<512x512xbf16>)

// SPIRV-DAG: spirv.module @matmul_coopmat_0 Logical GLSL450 requires #spirv.vce<v1.6, [{{[^]]*}}CooperativeMatrixKHR{{[^]]*}}]
// SPIRV-DAG: spirv.KHR.CooperativeMatrixMulAdd {{.*}} : !spirv.coopmatrix<128x64xf16, Workgroup, MatrixA>, !spirv.coopmatrix<64x128xf16, Workgroup, MatrixB> -> !spirv.coopmatrix<128x128xf32, Workgroup, MatrixAcc>
// SPIRV-DAG: tessera.workgroup_matrices
// SPIRV-DAG: spirv.KHR.CooperativeMatrixMulAdd {{.*}} : !spirv.coopmatrix<16x16xf16, Subgroup, MatrixA>, !spirv.coopmatrix<16x16xf16, Subgroup, MatrixB> -> !spirv.coopmatrix<16x16xf32, Subgroup, MatrixAcc>
// SPIRV-DAG: tessera.bf16_as_f16

// BINARY: matmul_coopmat_0.spv: bf16 types 0, f16 types 1, capabilities CooperativeMatrixKHR
// BINARY: matmul_coopmat_1.spv: bf16 types 1, f16 types 0, capabilities BFloat16CooperativeMatrixKHR BFloat16TypeKHR CooperativeMatrixKHR, extension SPV_KHR_bfloat16
// BINARY: matmul_coopmat_wg_0.spv: bf16 types 1, f16 types 0, capabilities BFloat16CooperativeMatrixKHR BFloat16TypeKHR CooperativeMatrixKHR, extension SPV_KHR_bfloat16

module {
  func.func @loss(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>) -> tensor<f32> {
    %a = tessera.param frozen "a" : tensor<512x512xbf16>
    %w = tessera.param frozen "w" : tensor<512x512xbf16>
    %c = tessera.matmul %a, %w {transpose_rhs = true} : (tensor<512x512xbf16>, tensor<512x512xbf16>) -> tensor<512x512xbf16>
    %q = tessera.param frozen "q" : tensor<4x256x64xf16>
    %k = tessera.param frozen "k" : tensor<4x64x256xf16>
    %s = tessera.matmul %q, %k : (tensor<4x256x64xf16>, tensor<4x64x256xf16>) -> tensor<4x256x256xf32>
    %a32 = tessera.param frozen "a32" : tensor<512x512xf32>
    %w32 = tessera.param frozen "w32" : tensor<512x512xf32>
    %c32 = tessera.matmul %a32, %w32 {transpose_rhs = true} : (tensor<512x512xf32>, tensor<512x512xf32>) -> tensor<512x512xf32>
    %m = tessera.matmul %a, %w32 {transpose_rhs = true} : (tensor<512x512xbf16>, tensor<512x512xf32>) -> tensor<512x512xbf16>
    %r0 = tessera.reduce sum %c {axes = array<i64: 0, 1>} : tensor<512x512xbf16> -> tensor<f32>
    %r1 = tessera.reduce sum %s {axes = array<i64: 0, 1, 2>} : tensor<4x256x256xf32> -> tensor<f32>
    %r2 = tessera.reduce sum %c32 {axes = array<i64: 0, 1>} : tensor<512x512xf32> -> tensor<f32>
    %r3 = tessera.reduce sum %m {axes = array<i64: 0, 1>} : tensor<512x512xbf16> -> tensor<f32>
    %t0 = tessera.binary add %r0, %r1 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %t1 = tessera.binary add %t0, %r2 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %t2 = tessera.binary add %t1, %r3 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %wq = tessera.param frozen "wq" {tessera.quant = "q8_0"} : tensor<512x512xbf16>
    %cq = tessera.matmul %a, %wq {transpose_rhs = true} : (tensor<512x512xbf16>, tensor<512x512xbf16>) -> tensor<512x512xbf16>
    %r4 = tessera.reduce sum %cq {axes = array<i64: 0, 1>} : tensor<512x512xbf16> -> tensor<f32>
    %t3 = tessera.binary add %t2, %r4 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    return %t3 : tensor<f32>
  }
}
