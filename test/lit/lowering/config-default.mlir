// tessera-select-kernel-configs with the built-in profile
// (autotune/profiles/default.json): the configs chosen for the typical shapes
// of Inputs/config-shapes.mlir, the SPIR-V target (Vulkan 1.1 minimum: no
// 16-bit capabilities, default limits) and the module's kernel target. The
// output is parsed again (the attributes round-trip).
// RUN: tessera-opt %S/Inputs/config-shapes.mlir --tessera-select-kernel-configs | tessera-opt | FileCheck %s
// RUN: tessera-opt %S/Inputs/config-shapes.mlir --tessera-select-kernel-configs=profile=%repo/autotune/profiles/default.json | FileCheck %s

// CHECK: spirv.target_env = #spirv.target_env<#spirv.vce<v1.3, [Shader, GroupNonUniform, GroupNonUniformArithmetic, GroupNonUniformBallot, GroupNonUniformShuffle], [SPV_KHR_storage_buffer_storage_class]>, api=Vulkan, #spirv.resource_limits<cooperative_matrix_properties_khr = [], cooperative_matrix_properties_nv = []>>
// CHECK-SAME: tessera.kernel_target = {elementwise = #tessera.elementwise_config<workgroup_size = 128>, max_workgroup_count = 65535 : i64, profile = "default", profile_file = "{{[^"]*}}", reduce = #tessera.reduction_config<strategy = workgroup, workgroup_size = 128>}

// Linear layer: the general 64x64 tile, 4x8 register tiles (128 threads).
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = tiled, tile = [64, 64, 16], thread = [4, 8], split_k = 1>
// LoRA down, rank 16 (N <= 16, K >= 512): split over K in 8.
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "lora_down", kind = tiled, tile = [64, 16, 16], thread = [4, 2], split_k = 8>
// LoRA down, rank 64: no variant admits N = 64 but the general one.
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = tiled, tile = [64, 64, 16], thread = [4, 8], split_k = 1>
// LoRA A gradient (M = 16, K = 512): split over K.
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "lora_grad", kind = tiled, tile = [16, 64, 16], thread = [2, 4], split_k = 8>
// Attention scores, K = 4096, K = vocabulary: general.
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = tiled, tile = [64, 64, 16], thread = [4, 8], split_k = 1>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = tiled, tile = [64, 64, 16], thread = [4, 8], split_k = 1>
// Softmax: rows of 128 > serial_max 16 get a workgroup each, rows of 16 a thread.
// CHECK: tessera.softmax {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 128>
// CHECK: tessera.softmax {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 128>
// Fused attention: a workgroup of the softmax size per row (group).
// CHECK: tessera.flash_attention {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 128>
// CHECK: tessera.flash_attention_grad {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 128>
// CHECK: tessera.gather {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 128>
// CHECK: tessera.binary {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 128>
// Reductions: the norm statistics (innermost 1024) and the column sum (1024
// outputs < serial_min_outputs 4096) a workgroup per output; extent 16 <=
// serial_max 64: serial.
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 128>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 128>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 128>
// CHECK: tessera.transpose {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 128>
// CHECK: tessera.cross_entropy {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 128>
// CHECK: tessera.cross_entropy_grad {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 128>
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = tiled, tile = [64, 64, 16], thread = [4, 8], split_k = 1>
// CHECK: tessera.adamw_update {{.*}}tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 128>
// Injected configs are kept.
// CHECK: tessera.matmul {{.*}}tessera.kernel_config = #tessera.matmul_config<variant = "", kind = direct, tile = [8, 8, 8], thread = [2, 2], split_k = 2>
// CHECK: tessera.reduce {{.*}}tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 32>

// An injected target environment and kernel target are kept too.
// RUN: tessera-opt %S/Inputs/config-shapes.mlir --tessera-select-kernel-configs=profile=%repo/autotune/profiles/lavapipe.json | tessera-opt --tessera-select-kernel-configs | FileCheck %s --check-prefix=KEPT
// KEPT: StorageBuffer16BitAccess
// KEPT-SAME: profile = "lavapipe"
// KEPT: variant = "narrow_n", kind = direct

// An injected config that its verifier rejects: one clear error.
// RUN: sed -e 's/thread = \[2, 2\]/thread = [3, 2]/' %S/Inputs/config-shapes.mlir | not tessera-opt --tessera-select-kernel-configs 2>&1 | FileCheck %s --check-prefix=BAD
// BAD: error: matmul_config tile [8, 8] is not a multiple of the thread tile [3, 2]
