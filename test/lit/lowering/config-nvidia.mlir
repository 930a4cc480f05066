// tessera-select-kernel-configs with autotune/profiles/nvidia.json (tuned on
// an H100): split-K for LoRA-shaped products (also rank 64), for K >= 4096
// and, by 32, for the vocabulary-long K of the embedding gradient; larger
// workgroups; 48 KiB shared memory.
// RUN: tessera-opt %S/Inputs/config-shapes.mlir --tessera-select-kernel-configs=profile=%repo/autotune/profiles/nvidia.json | tessera-opt | FileCheck %s

// The default subgroup size (32) is not printed.
// CHECK: spirv.target_env = #spirv.target_env<#spirv.vce<v1.3, [Shader, GroupNonUniform, GroupNonUniformArithmetic, GroupNonUniformBallot, GroupNonUniformShuffle, Float16, Int16, StorageBuffer16BitAccess, Int8, StorageBuffer8BitAccess], [SPV_KHR_storage_buffer_storage_class, SPV_KHR_16bit_storage, SPV_KHR_8bit_storage]>, api=Vulkan, #spirv.resource_limits<max_compute_shared_memory_size = 49152, max_compute_workgroup_invocations = 1024, max_compute_workgroup_size = [1024 : i32, 1024 : i32, 64 : i32], cooperative_matrix_properties_khr = [], cooperative_matrix_properties_nv = []>>
// CHECK-SAME: tessera.kernel_target = {elementwise = #tessera.elementwise_config<workgroup_size = 256>, max_workgroup_count = 65535 : i64, profile = "nvidia", reduce = #tessera.reduction_config<strategy = workgroup, workgroup_size = 256>}

// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = tiled, tile = [64, 64, 16], thread = [4, 4], split_k = 1>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "lora_down", kind = tiled, tile = [64, 16, 16], thread = [4, 2], split_k = 8>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "lora_down_wide", kind = tiled, tile = [64, 64, 16], thread = [4, 4], split_k = 4>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "lora_grad", kind = tiled, tile = [16, 64, 16], thread = [2, 4], split_k = 8>
// Attention scores (K = 64): general; K = 4096: long_k.
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = tiled, tile = [64, 64, 16], thread = [4, 4], split_k = 1>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "long_k", kind = tiled, tile = [64, 64, 16], thread = [4, 4], split_k = 4>
// CHECK: tessera.softmax {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 256>
// CHECK: tessera.softmax {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 256>
// CHECK: tessera.gather {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>
// CHECK: tessera.binary {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 256>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 256>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 256>
// CHECK: tessera.transpose {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>
// CHECK: tessera.cross_entropy {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 512>
// CHECK: tessera.cross_entropy_grad {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 512>
// The gradient against the embedding table: K = 151936.
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "vocab_k", kind = tiled, tile = [64, 64, 16], thread = [4, 4], split_k = 32>
// CHECK: tessera.adamw_update {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "", kind = direct, tile = [8, 8, 8], thread = [2, 2], split_k = 2>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 32>
