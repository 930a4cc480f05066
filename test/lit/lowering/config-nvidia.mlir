// tessera-select-kernel-configs with autotune/profiles/nvidia.json (tuned on
// an H100): split-K for LoRA-shaped products (on cooperative matrices where both operands are bf16) (also rank 64; the skinny kernel measured slower on the H200), for K >= 4096
// and, by 32, for the vocabulary-long K of the embedding gradient; larger
// workgroups; 48 KiB shared memory.
// RUN: tessera-opt %S/Inputs/config-shapes.mlir --tessera-select-kernel-configs=profile=%repo/autotune/profiles/nvidia.json | tessera-opt | FileCheck %s

// The default subgroup size (32) is not printed; the cooperative-matrix shape
// raises SPIR-V to 1.6.
// CHECK: spirv.target_env = #spirv.target_env<#spirv.vce<v1.6, [Shader, GroupNonUniform, GroupNonUniformArithmetic, GroupNonUniformBallot, GroupNonUniformShuffle, Float16, Int16, StorageBuffer16BitAccess, Int8, StorageBuffer8BitAccess, DotProduct, DotProductInput4x8BitPacked, CooperativeMatrixKHR], [SPV_KHR_storage_buffer_storage_class, SPV_KHR_16bit_storage, SPV_KHR_8bit_storage, SPV_KHR_integer_dot_product, SPV_KHR_cooperative_matrix]>, api=Vulkan, #spirv.resource_limits<max_compute_shared_memory_size = 49152, max_compute_workgroup_invocations = 1024, max_compute_workgroup_size = [1024 : i32, 1024 : i32, 64 : i32], cooperative_matrix_properties_khr = [#spirv.coop_matrix_props_khr<m_size = 16, n_size = 16, k_size = 16, a_type = f16, b_type = f16, c_type = f32, result_type = f32, acc_sat = false, scope = <Subgroup>>], cooperative_matrix_properties_nv = []>>
// CHECK-SAME: tessera.kernel_target = {elementwise = #tessera.elementwise_config<workgroup_size = 256>, max_workgroup_count = 65535 : i64, profile = "nvidia", profile_file = "{{[^"]*}}", reduce = #tessera.reduction_config<strategy = workgroup, workgroup_size = 1024>}

// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "layers_wg_bf16", kind = coopmat, tile = [128, 128, 64], thread = [32, 8], split_k = 1, mma = [128, 128, 64], subgroups = [2, 4], operands = bf16>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "lora_down", kind = tiled, tile = [64, 16, 16], thread = [4, 2], split_k = 8>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "lora_down_wide", kind = tiled, tile = [64, 64, 16], thread = [4, 4], split_k = 4>
// The LoRA A gradient multiplies two bf16 values: a cooperative-matrix
// variant for its 16-row side (one row of fragments over 4 subgroups), split-K.
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "lora_grad_tc_bf16", kind = coopmat, tile = [16, 64, 32], thread = [32, 8], split_k = 4, mma = [16, 16, 16], subgroups = [1, 4], operands = bf16>
// bf16 x bf16 products whose tiles divide them take workgroup-scope
// cooperative matrices (VK_NV_cooperative_matrix2; attention scores, K = 64,
// and K = 4096 too).
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "layers_wg_bf16", kind = coopmat, tile = [128, 128, 64], thread = [32, 8], split_k = 1, mma = [128, 128, 64], subgroups = [2, 4], operands = bf16>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "layers_wg_bf16", kind = coopmat, tile = [128, 128, 64], thread = [32, 8], split_k = 1, mma = [128, 128, 64], subgroups = [2, 4], operands = bf16>
// CHECK: tessera.softmax {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 256>
// CHECK: tessera.softmax {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 256>
// Fused attention of bf16 q, k, v: the attention variant fa_tc_bf16 (cooperative matrices).
// CHECK: tessera.flash_attention {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "fa_tc_bf16", kind = coopmat, tile = [64, 32, 16], thread = [32, 8], split_k = 1, mma = [16, 16, 16], subgroups = [4, 1], operands = bf16>
// CHECK: tessera.flash_attention_grad {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "fa_tc_bf16", kind = coopmat, tile = [64, 32, 16], thread = [32, 8], split_k = 1, mma = [16, 16, 16], subgroups = [4, 1], operands = bf16>
// CHECK: tessera.gather {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>
// CHECK: tessera.binary {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 256>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 256>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 256>
// CHECK: tessera.transpose {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>
// CHECK: tessera.cross_entropy {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 512>
// CHECK: tessera.cross_entropy_grad {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 512>
// The gradient against the embedding table: K = 151936. bf16 x bf16:
// workgroup-scope cooperative matrices split 8 ways (one 512 x 1024 chunk is
// 32 tiles: the SMs were three quarters idle).
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "vocab_k_wg_bf16", kind = coopmat, tile = [128, 128, 64], thread = [32, 8], split_k = 8, mma = [128, 128, 64], subgroups = [2, 4], operands = bf16>
// CHECK: tessera.adamw_update {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "", kind = direct, tile = [8, 8, 8], thread = [2, 2], split_k = 2>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 32>
