// Fused attention on cooperative matrices (kernels/AttentionCoopMat.cpp):
// nvidia.json's attention variant fa_tc_bf16 for bf16 q, k, v, a coopmat
// matmul_config on flash_attention and flash_attention_grad; lowered to
// SPV_KHR_cooperative_matrix kernels (forward; rowsum(dout * out), dq, dk/dv
// backward) whose binaries are retyped to bf16. A head dim of no whole 16x16
// fragments (24) keeps the SIMT kernels under the same config, f32 q, k, v
// the reduction_config. The trixie lavapipe tests validate and run them
// (KernelNumericsAttention.CoopMat*).
// RUN: tessera-opt %s --tessera-select-kernel-configs=profile=%repo/autotune/profiles/nvidia.json | FileCheck %s --check-prefix=CONFIG
// RUN: rm -rf %t && tessera-opt %s --tessera-select-kernel-configs=profile=%repo/autotune/profiles/nvidia.json --tessera-lower-to-kernels --tessera-kernels-to-spirv=dump-dir=%t | FileCheck %s --check-prefix=SPIRV
// RUN: %python %S/Inputs/spirv_bf16_check.py %t | FileCheck %s --check-prefix=BINARY

// CONFIG-LABEL: func.func @loss
// CONFIG: tessera.flash_attention {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "fa_tc_bf16", kind = coopmat, tile = [64, 32, 16], thread = [32, 8], split_k = 1, mma = [16, 16, 16], subgroups = [4, 1], operands = bf16>
// CONFIG-SAME: (tensor<1x4x100x64xbf16>
// CONFIG: tessera.flash_attention_grad {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "fa_tc_bf16", kind = coopmat
// CONFIG: tessera.flash_attention {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "fa_tc_bf16", kind = coopmat
// CONFIG-SAME: (tensor<1x4x100x24xbf16>
// CONFIG: tessera.flash_attention {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 256>
// CONFIG-SAME: (tensor<1x4x100x64xf32>

// SPIRV-DAG: spirv.module @flash_attention_coopmat_0 Logical GLSL450 requires #spirv.vce<v1.6, [{{[^]]*}}CooperativeMatrixKHR{{[^]]*}}]
// SPIRV-DAG: spirv.module @flash_attention_delta_0
// SPIRV-DAG: spirv.module @flash_attention_dq_coopmat_0 Logical GLSL450 requires #spirv.vce<v1.6, [{{[^]]*}}CooperativeMatrixKHR{{[^]]*}}]
// SPIRV-DAG: spirv.module @flash_attention_dkv_coopmat_0 Logical GLSL450 requires #spirv.vce<v1.6, [{{[^]]*}}CooperativeMatrixKHR{{[^]]*}}]
// SPIRV-DAG: spirv.KHR.CooperativeMatrixMulAdd {{.*}} : !spirv.coopmatrix<16x16xf16, Subgroup, MatrixA>, !spirv.coopmatrix<16x16xf16, Subgroup, MatrixB> -> !spirv.coopmatrix<16x16xf32, Subgroup, MatrixAcc>
// The SIMT kernels for the head dim 24 and the f32 problem.
// SPIRV-DAG: spirv.module @flash_attention_0
// SPIRV-DAG: spirv.module @flash_attention_1

// BINARY: flash_attention_coopmat_0.spv: bf16 types 1, f16 types 0, capabilities BFloat16CooperativeMatrixKHR BFloat16TypeKHR CooperativeMatrixKHR, extension SPV_KHR_bfloat16
// BINARY: flash_attention_dkv_coopmat_0.spv: bf16 types 1, f16 types 0, capabilities BFloat16CooperativeMatrixKHR BFloat16TypeKHR CooperativeMatrixKHR, extension SPV_KHR_bfloat16
// BINARY: flash_attention_dq_coopmat_0.spv: bf16 types 1, f16 types 0, capabilities BFloat16CooperativeMatrixKHR BFloat16TypeKHR CooperativeMatrixKHR, extension SPV_KHR_bfloat16

module {
  func.func @loss(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>) -> tensor<f32> {
    %q = tessera.param frozen "q" : tensor<1x4x100x64xbf16>
    %k = tessera.param frozen "k" : tensor<1x2x100x64xbf16>
    %cm = tessera.param frozen "cm" : tensor<100x100xf32>
    %a:2 = tessera.flash_attention %q, %k, %k mask %cm {scale = 0.125 : f64, kv_groups = 2 : i64} : (tensor<1x4x100x64xbf16>, tensor<1x2x100x64xbf16>, tensor<1x2x100x64xbf16>, tensor<100x100xf32>) -> (tensor<1x4x100x64xbf16>, tensor<1x4x100xf32>)
    %g:3 = tessera.flash_attention_grad %q, %k, %k, %a#0, %a#1, %q mask %cm {scale = 0.125 : f64, kv_groups = 2 : i64} : (tensor<1x4x100x64xbf16>, tensor<1x2x100x64xbf16>, tensor<1x2x100x64xbf16>, tensor<1x4x100x64xbf16>, tensor<1x4x100xf32>, tensor<1x4x100x64xbf16>, tensor<100x100xf32>) -> (tensor<1x4x100x64xbf16>, tensor<1x2x100x64xbf16>, tensor<1x2x100x64xbf16>)
    %q24 = tessera.param frozen "q24" : tensor<1x4x100x24xbf16>
    %k24 = tessera.param frozen "k24" : tensor<1x2x100x24xbf16>
    %b:2 = tessera.flash_attention %q24, %k24, %k24 {scale = 0.2 : f64, kv_groups = 2 : i64} : (tensor<1x4x100x24xbf16>, tensor<1x2x100x24xbf16>, tensor<1x2x100x24xbf16>) -> (tensor<1x4x100x24xbf16>, tensor<1x4x100xf32>)
    %q32 = tessera.param frozen "q32" : tensor<1x4x100x64xf32>
    %k32 = tessera.param frozen "k32" : tensor<1x2x100x64xf32>
    %c:2 = tessera.flash_attention %q32, %k32, %k32 {scale = 0.125 : f64, kv_groups = 2 : i64} : (tensor<1x4x100x64xf32>, tensor<1x2x100x64xf32>, tensor<1x2x100x64xf32>) -> (tensor<1x4x100x64xf32>, tensor<1x4x100xf32>)
    %r0 = tessera.reduce sum %g#1 {axes = array<i64: 0, 1, 2, 3>} : tensor<1x2x100x64xbf16> -> tensor<f32>
    %r1 = tessera.reduce sum %b#1 {axes = array<i64: 0, 1, 2>} : tensor<1x4x100xf32> -> tensor<f32>
    %r2 = tessera.reduce sum %c#1 {axes = array<i64: 0, 1, 2>} : tensor<1x4x100xf32> -> tensor<f32>
    %r3 = tessera.reduce sum %g#0 {axes = array<i64: 0, 1, 2, 3>} : tensor<1x4x100x64xbf16> -> tensor<f32>
    %r4 = tessera.reduce sum %g#2 {axes = array<i64: 0, 1, 2, 3>} : tensor<1x2x100x64xbf16> -> tensor<f32>
    %t0 = tessera.binary add %r0, %r1 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %t1 = tessera.binary add %t0, %r2 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %t2 = tessera.binary add %t1, %r3 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %t3 = tessera.binary add %t2, %r4 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    return %t3 : tensor<f32>
  }
}
