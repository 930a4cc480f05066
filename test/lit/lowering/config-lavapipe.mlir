// tessera-select-kernel-configs with autotune/profiles/lavapipe.json (Mesa's
// CPU driver): 'direct' matmuls without shared memory (barriers are expensive
// on a CPU) and no split-K, the 16-bit, 8-bit and integer dot product
// capabilities of its device features, its limits (subgroup 8, 32 KiB shared memory).
// RUN: tessera-opt %S/Inputs/config-shapes.mlir --tessera-select-kernel-configs=profile=%repo/autotune/profiles/lavapipe.json | tessera-opt | FileCheck %s

// CHECK: spirv.target_env = #spirv.target_env<#spirv.vce<v1.3, [Shader, GroupNonUniform, GroupNonUniformArithmetic, GroupNonUniformBallot, GroupNonUniformShuffle, Float16, Int16, StorageBuffer16BitAccess, Int8, StorageBuffer8BitAccess, DotProduct, DotProductInput4x8BitPacked], [SPV_KHR_storage_buffer_storage_class, SPV_KHR_16bit_storage, SPV_KHR_8bit_storage, SPV_KHR_integer_dot_product]>, api=Vulkan, #spirv.resource_limits<max_compute_shared_memory_size = 32768, max_compute_workgroup_invocations = 1024, max_compute_workgroup_size = [1024 : i32, 1024 : i32, 64 : i32], subgroup_size = 8, cooperative_matrix_properties_khr = [], cooperative_matrix_properties_nv = []>>
// CHECK-SAME: tessera.kernel_target = {elementwise = #tessera.elementwise_config<workgroup_size = 256>, max_workgroup_count = 65535 : i64, profile = "lavapipe", profile_file = "{{[^"]*}}", reduce = #tessera.reduction_config<strategy = workgroup, workgroup_size = 64>}

// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = direct, tile = [32, 32, 16], thread = [4, 4], split_k = 1>
// LoRA down rank 16: narrow N; rank 64: general; LoRA A gradient: narrow M.
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "narrow_n", kind = direct, tile = [32, 16, 16], thread = [4, 4], split_k = 1>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = direct, tile = [32, 32, 16], thread = [4, 4], split_k = 1>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "narrow_m", kind = direct, tile = [16, 32, 16], thread = [4, 4], split_k = 1>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = direct, tile = [32, 32, 16], thread = [4, 4], split_k = 1>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = direct, tile = [32, 32, 16], thread = [4, 4], split_k = 1>
// Softmax rows of 128 > serial_max 32: workgroup of 64; rows of 16: serial,
// 256 rows per workgroup (the elementwise size).
// CHECK: tessera.softmax {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 64>
// CHECK: tessera.softmax {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 256>
// Fused attention: a workgroup of the softmax size per row (group).
// CHECK: tessera.flash_attention {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 64>
// CHECK: tessera.flash_attention_grad {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 64>
// CHECK: tessera.gather {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>
// CHECK: tessera.binary {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>
// The column sum has 1024 >= serial_min_outputs 1024 outputs with the
// innermost dim kept: serial (unlike the default and nvidia profiles).
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 64>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 256>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 256>
// CHECK: tessera.transpose {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>
// CHECK: tessera.cross_entropy {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 128>
// CHECK: tessera.cross_entropy_grad {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 128>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = direct, tile = [32, 32, 16], thread = [4, 4], split_k = 1>
// CHECK: tessera.adamw_update {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "", kind = direct, tile = [8, 8, 8], thread = [2, 2], split_k = 2>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 32>
