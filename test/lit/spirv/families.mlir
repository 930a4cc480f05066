// Every kernel family, converted to SPIR-V and validated with spirv-val for
// Vulkan 1.1 under each shipped profile.
// RUN: rm -rf %t && mkdir -p %t/default %t/lavapipe %t/nvidia
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels --tessera-kernels-to-spirv=dump-dir=%t/default | FileCheck %s
// RUN: %python %S/validate_spirv.py %t/default | FileCheck %s --check-prefix=VALID
// RUN: tessera-opt %s --tessera-select-kernel-configs=profile=%repo/autotune/profiles/lavapipe.json --tessera-lower-to-kernels --tessera-kernels-to-spirv=dump-dir=%t/lavapipe -o /dev/null
// RUN: %python %S/validate_spirv.py %t/lavapipe | FileCheck %s --check-prefix=VALID
// RUN: tessera-opt %s --tessera-select-kernel-configs=profile=%repo/autotune/profiles/nvidia.json --tessera-lower-to-kernels --tessera-kernels-to-spirv=dump-dir=%t/nvidia -o /dev/null
// RUN: %python %S/validate_spirv.py %t/nvidia | FileCheck %s --check-prefix=VALID

module {
  func.func @train_step(%ids: tensor<2x8xi32>, %labels: tensor<2x8xi32>, %hp: tensor<8xf32>) -> tensor<f32> {
    // Unary, all functions.
    %x = tessera.param frozen "x" : tensor<4x33xf32>
    %u0 = tessera.unary neg %x : tensor<4x33xf32>
    %u1 = tessera.unary exp %u0 : tensor<4x33xf32>
    %u2 = tessera.unary log %u1 : tensor<4x33xf32>
    %u3 = tessera.unary sqrt %u2 : tensor<4x33xf32>
    %u4 = tessera.unary rsqrt %u3 : tensor<4x33xf32>
    %u5 = tessera.unary reciprocal %u4 : tensor<4x33xf32>
    %u6 = tessera.unary sigmoid %u5 : tensor<4x33xf32>
    %u7 = tessera.unary tanh %u6 : tensor<4x33xf32>
    %u8 = tessera.unary silu %u7 : tensor<4x33xf32>
    %u9 = tessera.unary gelu_tanh %u8 : tensor<4x33xf32>
    %u10 = tessera.unary cos %u9 : tensor<4x33xf32>
    %u11 = tessera.unary sin %u10 : tensor<4x33xf32>
    %u12 = tessera.unary relu %u11 : tensor<4x33xf32>
    %u13 = tessera.unary abs %u12 : tensor<4x33xf32>
    // Binary with broadcasting, all functions.
    %y = tessera.param frozen "y" : tensor<33xf32>
    %b0 = tessera.binary add %u13, %y : (tensor<4x33xf32>, tensor<33xf32>) -> tensor<4x33xf32>
    %b1 = tessera.binary sub %b0, %y : (tensor<4x33xf32>, tensor<33xf32>) -> tensor<4x33xf32>
    %b2 = tessera.binary mul %b1, %y : (tensor<4x33xf32>, tensor<33xf32>) -> tensor<4x33xf32>
    %b3 = tessera.binary div %b2, %y : (tensor<4x33xf32>, tensor<33xf32>) -> tensor<4x33xf32>
    %b4 = tessera.binary pow %b3, %y : (tensor<4x33xf32>, tensor<33xf32>) -> tensor<4x33xf32>
    %b5 = tessera.binary max %b4, %y : (tensor<4x33xf32>, tensor<33xf32>) -> tensor<4x33xf32>
    %b6 = tessera.binary min %b5, %y : (tensor<4x33xf32>, tensor<33xf32>) -> tensor<4x33xf32>
    // Select and casts.
    %c = tessera.param frozen "c" : tensor<4x1xf32>
    %cb = tessera.cast %c : tensor<4x1xf32> -> tensor<4x1xi1>
    %s = tessera.select %cb, %b6, %y : (tensor<4x1xi1>, tensor<4x33xf32>, tensor<33xf32>) -> tensor<4x33xf32>
    %si = tessera.cast %s : tensor<4x33xf32> -> tensor<4x33xi32>
    %sb = tessera.cast %si : tensor<4x33xi32> -> tensor<4x33xi1>
    %sf = tessera.cast %sb : tensor<4x33xi1> -> tensor<4x33xf32>
    %idf = tessera.cast %ids : tensor<2x8xi32> -> tensor<2x8xf32>
    // Data movement.
    %t = tessera.transpose %sf [1, 0] : tensor<4x33xf32> -> tensor<33x4xf32>
    %bc = tessera.broadcast %t : tensor<33x4xf32> -> tensor<2x33x4xf32>
    %sl = tessera.slice %bc {starts = array<i64: 0, 1, 0>, limits = array<i64: 2, 33, 4>, strides = array<i64: 1, 2, 3>} : tensor<2x33x4xf32> -> tensor<2x16x2xf32>
    %pd = tessera.pad %sl {low = array<i64: 0, 1, 2>, high = array<i64: 0, 0, 1>, interior = array<i64: 0, 1, 0>} : tensor<2x16x2xf32> -> tensor<2x32x5xf32>
    %pdh = tessera.slice %pd {starts = array<i64: 0, 0, 0>, limits = array<i64: 2, 32, 2>, strides = array<i64: 1, 1, 1>} : tensor<2x32x5xf32> -> tensor<2x32x2xf32>
    %ct = tessera.concat %pd, %pdh, %pd {axis = 2 : i64} : (tensor<2x32x5xf32>, tensor<2x32x2xf32>, tensor<2x32x5xf32>) -> tensor<2x32x12xf32>
    %emb = tessera.param frozen "emb" : tensor<50x12xf32>
    %g = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<50x12xf32>, tensor<2x8xi32>) -> tensor<2x8x12xf32>
    // Reductions: workgroup and serial variants, keepdims.
    %r0 = tessera.reduce sum %ct {axes = array<i64: 2>} : tensor<2x32x12xf32> -> tensor<2x32xf32>
    %r1 = tessera.reduce mean %ct {axes = array<i64: 0, 2>, keepdims = true} : tensor<2x32x12xf32> -> tensor<1x32x1xf32>
    %big = tessera.param frozen "big" : tensor<8x1000xf32>
    %r2 = tessera.reduce max %big {axes = array<i64: 1>} : tensor<8x1000xf32> -> tensor<8xf32>
    // Softmax: serial (short rows) and workgroup variants.
    %sm0 = tessera.softmax %g : tensor<2x8x12xf32>
    %sm1 = tessera.softmax %big : tensor<8x1000xf32>
    // Matmul: linear layer (folded), narrow N, narrow M, transposes, batch broadcast.
    %w = tessera.param frozen "w" : tensor<96x12xf32>
    %mm0 = tessera.matmul %g, %w {transpose_rhs = true} : (tensor<2x8x12xf32>, tensor<96x12xf32>) -> tensor<2x8x96xf32>
    %la = tessera.param lora_a "layer.lora_A" : tensor<4x96xf32>
    %lb = tessera.param lora_b "layer.lora_B" : tensor<96x4xf32>
    %mm1 = tessera.matmul %mm0, %la {transpose_rhs = true} : (tensor<2x8x96xf32>, tensor<4x96xf32>) -> tensor<2x8x4xf32>
    %mm2 = tessera.matmul %mm1, %lb {transpose_rhs = true} : (tensor<2x8x4xf32>, tensor<96x4xf32>) -> tensor<2x8x96xf32>
    %mm3 = tessera.matmul %mm2, %mm0 {transpose_lhs = true} : (tensor<2x8x96xf32>, tensor<2x8x96xf32>) -> tensor<2x96x96xf32>
    %q = tessera.param frozen "q" : tensor<96x96xf32>
    %mm4 = tessera.matmul %q, %mm3 : (tensor<96x96xf32>, tensor<2x96x96xf32>) -> tensor<2x96x96xf32>
    %head = tessera.param frozen "head" : tensor<50x96xf32>
    %logits = tessera.matmul %mm2, %head {transpose_rhs = true} : (tensor<2x8x96xf32>, tensor<50x96xf32>) -> tensor<2x8x50xf32>
    // Cross-entropy and its gradient.
    %loss = tessera.cross_entropy %logits, %labels : (tensor<2x8x50xf32>, tensor<2x8xi32>) -> tensor<f32>
    %one = tessera.constant dense<1.0> : tensor<f32>
    %dlogits = tessera.cross_entropy_grad %logits, %labels, %one : (tensor<2x8x50xf32>, tensor<2x8xi32>, tensor<f32>) -> tensor<2x8x50xf32>
    // Keep everything alive through the gradients.
    %k0 = tessera.reduce sum %r0 {axes = array<i64: 0, 1>} : tensor<2x32xf32> -> tensor<f32>
    %k1 = tessera.reduce sum %r1 {axes = array<i64: 0, 1, 2>} : tensor<1x32x1xf32> -> tensor<f32>
    %k2 = tessera.reduce sum %r2 {axes = array<i64: 0>} : tensor<8xf32> -> tensor<f32>
    %k3 = tessera.reduce sum %sm0 {axes = array<i64: 0, 1, 2>} : tensor<2x8x12xf32> -> tensor<f32>
    %k4 = tessera.reduce sum %sm1 {axes = array<i64: 0, 1>} : tensor<8x1000xf32> -> tensor<f32>
    %k5 = tessera.reduce sum %mm4 {axes = array<i64: 0, 1, 2>} : tensor<2x96x96xf32> -> tensor<f32>
    %k6 = tessera.reduce sum %idf {axes = array<i64: 0, 1>} : tensor<2x8xf32> -> tensor<f32>
    %a0 = tessera.binary add %k0, %k1 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %a1 = tessera.binary add %a0, %k2 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %a2 = tessera.binary add %a1, %k3 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %a3 = tessera.binary add %a2, %k4 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %a4 = tessera.binary add %a3, %k5 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %a5 = tessera.binary add %a4, %k6 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %gs = tessera.broadcast %a5 : tensor<f32> -> tensor<4x96xf32>
    %ga = tessera.binary mul %gs, %la : (tensor<4x96xf32>, tensor<4x96xf32>) -> tensor<4x96xf32>
    %dl2 = tessera.reshape %dlogits : tensor<2x8x50xf32> -> tensor<16x50xf32>
    %h2 = tessera.reshape %head : tensor<50x96xf32> -> tensor<50x96xf32>
    %d = tessera.matmul %dl2, %h2 : (tensor<16x50xf32>, tensor<50x96xf32>) -> tensor<16x96xf32>
    %m1 = tessera.reshape %mm1 : tensor<2x8x4xf32> -> tensor<16x4xf32>
    %gb = tessera.matmul %d, %m1 {transpose_lhs = true} : (tensor<16x96xf32>, tensor<16x4xf32>) -> tensor<96x4xf32>
    tessera.adamw_update "layer.lora_A", %ga, %hp : tensor<4x96xf32>, tensor<8xf32>
    tessera.adamw_update "layer.lora_B", %gb, %hp : tensor<96x4xf32>, tensor<8xf32>
    return %loss : tensor<f32>
  }
  // A returned parameter is copied into the loss buffer.
  func.func @loss(%ids: tensor<2x8xi32>, %labels: tensor<2x8xi32>) -> tensor<f32> {
    %p = tessera.param frozen "scalar" : tensor<1xf32>
    %p2 = tessera.reshape %p : tensor<1xf32> -> tensor<f32>
    return %p2 : tensor<f32>
  }
}

// No gpu.module is left; each spirv.module is named like its kernel, with a
// GLCompute entry point of that name, LocalSize from the profile, storage
// buffers at set 0 binding i = argument i, workgroup memory for tiles.
// CHECK-NOT: gpu.module
// CHECK-LABEL: spirv.module @unary_neg_0 Logical GLSL450
// CHECK-DAG: spirv.GlobalVariable @{{.*}} bind(0, 0) : !spirv.ptr<!spirv.struct<(!spirv.array<132 x f32, stride=4> [0])>, StorageBuffer>
// CHECK-DAG: spirv.GlobalVariable @{{.*}} bind(0, 1) : !spirv.ptr<!spirv.struct<(!spirv.array<132 x f32, stride=4> [0])>, StorageBuffer>
// CHECK: spirv.EntryPoint "GLCompute" @unary_neg_0
// CHECK: spirv.ExecutionMode @unary_neg_0 "LocalSize", 128, 1, 1
// CHECK-LABEL: spirv.module @matmul_0
// CHECK: Workgroup>
// CHECK: spirv.ControlBarrier <Workgroup>, <Workgroup>, <AcquireRelease|WorkgroupMemory>
// CHECK: spirv.GL.Fma
// CHECK: spirv.EntryPoint "GLCompute" @matmul_0

// VALID-DAG: valid adamw_0
// VALID-DAG: valid binary_add_0
// VALID-DAG: valid binary_div_0
// VALID-DAG: valid binary_max_0
// VALID-DAG: valid binary_min_0
// VALID-DAG: valid binary_mul_0
// VALID-DAG: valid binary_pow_0
// VALID-DAG: valid binary_sub_0
// VALID-DAG: valid broadcast_0
// VALID-DAG: valid cast_0
// VALID-DAG: valid cast_1
// VALID-DAG: valid cast_2
// VALID-DAG: valid cast_3
// VALID-DAG: valid cast_4
// VALID-DAG: valid ce_count_0
// VALID-DAG: valid ce_grad_0
// VALID-DAG: valid ce_mean_0
// VALID-DAG: valid ce_rows_0
// VALID-DAG: valid concat_0
// VALID-DAG: valid copy_0
// VALID-DAG: valid gather_0
// VALID-DAG: valid matmul_0
// VALID-DAG: valid matmul_1
// VALID-DAG: valid matmul_2
// VALID-DAG: valid matmul_3
// VALID-DAG: valid matmul_4
// VALID-DAG: valid matmul_5
// VALID-DAG: valid matmul_6
// VALID-DAG: valid matmul_7
// VALID-DAG: valid pad_0
// VALID-DAG: valid reduce_max_0
// VALID-DAG: valid reduce_mean_0
// VALID-DAG: valid reduce_sum_0
// VALID-DAG: valid select_0
// VALID-DAG: valid slice_0
// VALID-DAG: valid slice_1
// VALID-DAG: valid softmax_0
// VALID-DAG: valid softmax_1
// VALID-DAG: valid transpose_0
// VALID-DAG: valid unary_abs_0
// VALID-DAG: valid unary_cos_0
// VALID-DAG: valid unary_exp_0
// VALID-DAG: valid unary_gelu_tanh_0
// VALID-DAG: valid unary_log_0
// VALID-DAG: valid unary_neg_0
// VALID-DAG: valid unary_reciprocal_0
// VALID-DAG: valid unary_relu_0
// VALID-DAG: valid unary_rsqrt_0
// VALID-DAG: valid unary_sigmoid_0
// VALID-DAG: valid unary_silu_0
// VALID-DAG: valid unary_sin_0
// VALID-DAG: valid unary_sqrt_0
// VALID-DAG: valid unary_tanh_0
// VALID: modules, 0 invalid
