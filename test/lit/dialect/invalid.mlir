// Verifier errors of the Tessera dialect: one case per message that the
// kernel-config attributes (TesseraDialect.cpp), the op verifiers
// (TesseraOps.cpp), the shape rules they share with the builders
// (TesseraTypeInference.cpp) and the ODS constraints and traits
// (TesseraOps.td) emit.
// RUN: tessera-opt %s -split-input-file -verify-diagnostics

//===----------------------------------------------------------------------===//
// #tessera.matmul_config
//===----------------------------------------------------------------------===//

func.func @matmul_config_tile_rank(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{matmul_config needs tile = [m, n, k] and thread = [m, n]}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "", kind = tiled, tile = [64, 64], thread = [4, 4], split_k = 1>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_thread_rank(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{matmul_config needs tile = [m, n, k] and thread = [m, n]}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "", kind = direct, tile = [64, 64, 16], thread = [4, 4, 4], split_k = 1>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_split_k(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{matmul_config sizes must be >= 1}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "", kind = tiled, tile = [64, 64, 16], thread = [4, 4], split_k = 0>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_negative_thread(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{matmul_config sizes must be >= 1}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "", kind = tiled, tile = [64, 64, 16], thread = [-4, 4], split_k = 1>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_tile_not_thread_multiple(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{matmul_config tile [64, 64] is not a multiple of the thread tile [3, 4]}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "", kind = tiled, tile = [64, 64, 16], thread = [3, 4], split_k = 1>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_mma_on_tiled(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{mma, subgroups and operands belong to coopmat configs}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "", kind = tiled, tile = [64, 64, 16], thread = [4, 4], split_k = 1, mma = [16, 16, 16], subgroups = [2, 2], operands = f16>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_coopmat_without_mma(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{a coopmat matmul_config needs mma = [m, n, k] and subgroups = [m, n]}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "tc", kind = coopmat, tile = [128, 128, 32], thread = [32, 8], split_k = 1>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_coopmat_mma_rank(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{a coopmat matmul_config needs mma = [m, n, k] and subgroups = [m, n]}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "tc", kind = coopmat, tile = [128, 128, 32], thread = [32, 8], split_k = 1, mma = [16, 16], subgroups = [2, 2], operands = f16>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_coopmat_zero_subgroups(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{matmul_config sizes must be >= 1}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "tc", kind = coopmat, tile = [128, 128, 32], thread = [32, 8], split_k = 1, mma = [16, 16, 16], subgroups = [0, 2], operands = f16>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_coopmat_tile_multiple(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{coopmat tile [96, 128, 32] is not a multiple of subgroups x mma}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "tc", kind = coopmat, tile = [96, 128, 32], thread = [32, 8], split_k = 1, mma = [16, 16, 16], subgroups = [4, 2], operands = f16>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_coopmat_tile_k(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{coopmat tile [128, 128, 24] is not a multiple of subgroups x mma}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "tc", kind = coopmat, tile = [128, 128, 24], thread = [32, 8], split_k = 1, mma = [16, 16, 16], subgroups = [2, 2], operands = f16>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_coopmat_vector_width(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{coopmat vector width (thread[1]) must be 1, 2, 4 or 8}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "tc", kind = coopmat, tile = [128, 128, 32], thread = [32, 6], split_k = 1, mma = [16, 16, 16], subgroups = [2, 2], operands = f16>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_coopmat_vector_width_16(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{coopmat vector width (thread[1]) must be 1, 2, 4 or 8}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "tc", kind = coopmat, tile = [128, 128, 32], thread = [32, 16], split_k = 1, mma = [16, 16, 16], subgroups = [2, 2], operands = bf16>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_coopmat_operands(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{a coopmat matmul_config needs operands = f16 or bf16}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "tc", kind = coopmat, tile = [128, 128, 32], thread = [32, 8], split_k = 1, mma = [16, 16, 16], subgroups = [2, 2], operands = f32>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// #tessera.reduction_config, #tessera.elementwise_config
//===----------------------------------------------------------------------===//

func.func @reduction_config_zero(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{reduction_config workgroup_size must be >= 1 (a power of two for the workgroup strategy), got 0}}
  %0 = tessera.softmax %x {tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 0>} : tensor<4x4xf32>
  return
}

// -----

func.func @reduction_config_not_power_of_two(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{reduction_config workgroup_size must be >= 1 (a power of two for the workgroup strategy), got 96}}
  %0 = tessera.reduce sum %x {axes = array<i64: 1>, tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 96>} : tensor<4x4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @elementwise_config_zero(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{elementwise_config workgroup_size must be >= 1, got 0}}
  %0 = tessera.unary exp %x {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 0>} : tensor<4x4xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tessera.kernel_config, tessera.kernel_target (verifyOperationAttribute)
//===----------------------------------------------------------------------===//

func.func @kernel_config_matmul_misfit(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.matmul' op kernel config #tessera.elementwise_config<workgroup_size = 64> does not fit this op}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 64>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @kernel_config_reduce_misfit(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.reduce' op kernel config #tessera.matmul_config<variant = "", kind = direct, tile = [8, 8, 8], thread = [2, 2], split_k = 1> does not fit this op}}
  %0 = tessera.reduce max %x {axes = array<i64: 0>, tessera.kernel_config = #tessera.matmul_config<variant = "", kind = direct, tile = [8, 8, 8], thread = [2, 2], split_k = 1>} : tensor<4x4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @kernel_config_attention_misfit(%q: tensor<1x1x4x8xf32>) {
  // Fused attention takes a reduction_config or a coopmat matmul_config, no tiled one.
  // expected-error @+1 {{'tessera.flash_attention' op kernel config #tessera.matmul_config<variant = "", kind = tiled, tile = [8, 8, 8], thread = [2, 2], split_k = 1> does not fit this op}}
  %0:2 = tessera.flash_attention %q, %q, %q {scale = 0.5 : f64, kv_groups = 1 : i64, tessera.kernel_config = #tessera.matmul_config<variant = "", kind = tiled, tile = [8, 8, 8], thread = [2, 2], split_k = 1>} : (tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>) -> (tensor<1x1x4x8xf32>, tensor<1x1x4xf32>)
  return
}

// -----

func.func @kernel_config_softmax_misfit(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.softmax' op kernel config #tessera.elementwise_config<workgroup_size = 64> does not fit this op}}
  %0 = tessera.softmax %x {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 64>} : tensor<4x4xf32>
  return
}

// -----

func.func @kernel_config_elementwise_misfit(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.binary' op kernel config #tessera.reduction_config<strategy = serial, workgroup_size = 64> does not fit this op}}
  %0 = tessera.binary add %x, %x {tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 64>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @kernel_config_not_an_attr(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.cast' op kernel config 64 : i64 does not fit this op}}
  %0 = tessera.cast %x {tessera.kernel_config = 64} : tensor<4x4xf32> -> tensor<4x4xf16>
  return
}

// -----

// expected-error @+1 {{'func.func' op tessera.kernel_target must be a module dictionary {profile = "name", max_workgroup_count = N >= 1, elementwise = #tessera.elementwise_config, reduce = #tessera.reduction_config (workgroup strategy)}}}
func.func @kernel_target_not_on_module() attributes {tessera.kernel_target = {profile = "p", max_workgroup_count = 65535 : i64, elementwise = #tessera.elementwise_config<workgroup_size = 64>, reduce = #tessera.reduction_config<strategy = workgroup, workgroup_size = 64>}} {
  return
}

// -----

// expected-error @+1 {{'builtin.module' op tessera.kernel_target must be a module dictionary}}
module attributes {tessera.kernel_target = "default"} {
}

// -----

// expected-error @+1 {{'builtin.module' op tessera.kernel_target must be a module dictionary}}
module attributes {tessera.kernel_target = {max_workgroup_count = 65535 : i64, elementwise = #tessera.elementwise_config<workgroup_size = 64>, reduce = #tessera.reduction_config<strategy = workgroup, workgroup_size = 64>}} {
}

// -----

// expected-error @+1 {{'builtin.module' op tessera.kernel_target must be a module dictionary}}
module attributes {tessera.kernel_target = {profile = "p", max_workgroup_count = 0 : i64, elementwise = #tessera.elementwise_config<workgroup_size = 64>, reduce = #tessera.reduction_config<strategy = workgroup, workgroup_size = 64>}} {
}

// -----

// expected-error @+1 {{'builtin.module' op tessera.kernel_target must be a module dictionary}}
module attributes {tessera.kernel_target = {profile = "p", max_workgroup_count = 65535 : i64, reduce = #tessera.reduction_config<strategy = workgroup, workgroup_size = 64>}} {
}

// -----

// expected-error @+1 {{'builtin.module' op tessera.kernel_target must be a module dictionary}}
module attributes {tessera.kernel_target = {profile = "p", max_workgroup_count = 65535 : i64, elementwise = #tessera.elementwise_config<workgroup_size = 64>, reduce = #tessera.reduction_config<strategy = serial, workgroup_size = 64>}} {
}

// -----

//===----------------------------------------------------------------------===//
// tessera.param, tessera.constant
//===----------------------------------------------------------------------===//

func.func @param_int() {
  // expected-error @+1 {{'tessera.param' op result #0 must be statically shaped tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<2xi32>'}}
  %0 = tessera.param frozen "w" : tensor<2xi32>
  return
}

// -----

func.func @param_dynamic() {
  // expected-error @+1 {{'tessera.param' op result #0 must be statically shaped tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<?x2xf32>'}}
  %0 = tessera.param lora_a "w.lora_A" : tensor<?x2xf32>
  return
}

// -----

func.func @constant_type_mismatch() {
  // expected-error @+1 {{'tessera.constant' op failed to verify that all of {value, result} have same type}}
  %0 = "tessera.constant"() <{value = dense<1.0> : tensor<2xf32>}> : () -> tensor<3xf32>
  return
}

// -----

func.func @constant_i64() {
  // expected-error @+1 {{'tessera.constant' op result #0 must be statically shaped tensor of 32-bit float or 16-bit float or bfloat16 type or 32-bit signless integer or 1-bit signless integer values, but got 'tensor<2xi64>'}}
  %0 = tessera.constant dense<[1, 2]> : tensor<2xi64>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tessera.unary, binary, select, cast
//===----------------------------------------------------------------------===//

func.func @unary_dynamic(%x: tensor<?x3xf32>) {
  // expected-error @+1 {{'tessera.unary' op operand #0 must be statically shaped tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<?x3xf32>'}}
  %0 = tessera.unary exp %x : tensor<?x3xf32>
  return
}

// -----

func.func @unary_shape(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.unary' op requires the same shape for all operands and results}}
  %0 = tessera.unary tanh %x : tensor<2x3xf32> -> tensor<3x2xf32>
  return
}

// -----

func.func @binary_no_broadcast(%x: tensor<2x3xf32>, %y: tensor<4xf32>) {
  // expected-error @+1 {{'tessera.binary' op operands [2,3] and [4] do not broadcast}}
  %0 = tessera.binary add %x, %y : (tensor<2x3xf32>, tensor<4xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @binary_result_shape(%x: tensor<2x3xf32>, %y: tensor<3xf16>) {
  // expected-error @+1 {{'tessera.binary' op result shape [3] differs from broadcast shape [2,3]}}
  %0 = tessera.binary mul %x, %y : (tensor<2x3xf32>, tensor<3xf16>) -> tensor<3xf32>
  return
}

// -----

func.func @binary_int(%x: tensor<3xi32>) {
  // expected-error @+1 {{'tessera.binary' op operand #0 must be statically shaped tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<3xi32>'}}
  %0 = tessera.binary add %x, %x : (tensor<3xi32>, tensor<3xi32>) -> tensor<3xi32>
  return
}

// -----

func.func @select_no_broadcast(%c: tensor<4xi1>, %x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.select' op operands do not broadcast}}
  %0 = tessera.select %c, %x, %x : (tensor<4xi1>, tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @select_result_shape(%c: tensor<5x1x1xi1>, %x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.select' op result shape [2,3] differs from broadcast shape [5,2,3]}}
  %0 = tessera.select %c, %x, %x : (tensor<5x1x1xi1>, tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @select_float_cond(%c: tensor<2x3xf32>, %x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.select' op operand #0 must be statically shaped tensor of 1-bit signless integer values, but got 'tensor<2x3xf32>'}}
  %0 = tessera.select %c, %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @cast_shape(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.cast' op requires the same shape for all operands and results}}
  %0 = tessera.cast %x : tensor<2x3xf32> -> tensor<6xi32>
  return
}

// -----

func.func @cast_f64(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.cast' op result #0 must be statically shaped tensor of 32-bit float or 16-bit float or bfloat16 type or 32-bit signless integer or 1-bit signless integer values, but got 'tensor<2x3xf64>'}}
  %0 = tessera.cast %x : tensor<2x3xf32> -> tensor<2x3xf64>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tessera.matmul, reduce, softmax, dropout
//===----------------------------------------------------------------------===//

func.func @matmul_contraction(%x: tensor<2x4x8xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{'tessera.matmul' op contraction sizes differ: 8 vs 4}}
  %0 = tessera.matmul %x, %w : (tensor<2x4x8xf32>, tensor<4x16xf32>) -> tensor<2x4x16xf32>
  return
}

// -----

func.func @matmul_contraction_transposed(%x: tensor<8x4xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{'tessera.matmul' op contraction sizes differ: 4 vs 8}}
  %0 = tessera.matmul %x, %w {transpose_rhs = true} : (tensor<8x4xf32>, tensor<16x8xf32>) -> tensor<8x16xf32>
  return
}

// -----

func.func @matmul_rank(%x: tensor<8xf32>, %w: tensor<8x16xf32>) {
  // expected-error @+1 {{'tessera.matmul' op operands must have rank >= 2}}
  %0 = tessera.matmul %x, %w : (tensor<8xf32>, tensor<8x16xf32>) -> tensor<16xf32>
  return
}

// -----

func.func @matmul_batch(%x: tensor<2x4x8xf32>, %w: tensor<3x8x16xf32>) {
  // expected-error @+1 {{'tessera.matmul' op batch dimensions do not broadcast}}
  %0 = tessera.matmul %x, %w : (tensor<2x4x8xf32>, tensor<3x8x16xf32>) -> tensor<2x4x16xf32>
  return
}

// -----

func.func @matmul_result_shape(%x: tensor<2x4x8xf32>, %w: tensor<8x16xf32>) {
  // expected-error @+1 {{'tessera.matmul' op result shape [4,16] differs from broadcast shape [2,4,16]}}
  %0 = tessera.matmul %x, %w : (tensor<2x4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @reduce_axis_range(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.reduce' op axis 2 out of range for rank 2}}
  %0 = tessera.reduce sum %x {axes = array<i64: 2>} : tensor<2x3xf32> -> tensor<2xf32>
  return
}

// -----

func.func @reduce_axis_negative(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.reduce' op axis -1 out of range for rank 2}}
  %0 = tessera.reduce mean %x {axes = array<i64: -1>} : tensor<2x3xf32> -> tensor<2xf32>
  return
}

// -----

func.func @reduce_axis_repeated(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.reduce' op axis 1 repeated}}
  %0 = tessera.reduce max %x {axes = array<i64: 1, 1>} : tensor<2x3xf32> -> tensor<2xf32>
  return
}

// -----

func.func @reduce_result_shape(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.reduce' op result shape [2] differs from reduced shape [2,1]}}
  %0 = tessera.reduce sum %x {axes = array<i64: 1>, keepdims = true} : tensor<2x3xf32> -> tensor<2xf32>
  return
}

// -----

func.func @reduce_missing_axes(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.reduce' op requires attribute 'axes'}}
  %0 = tessera.reduce sum %x : tensor<2x3xf32> -> tensor<2xf32>
  return
}

// -----

func.func @softmax_shape(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.softmax' op requires the same shape for all operands and results}}
  %0 = tessera.softmax %x : tensor<2x3xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @softmax_int(%x: tensor<2x3xi32>) {
  // expected-error @+1 {{'tessera.softmax' op operand #0 must be statically shaped tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<2x3xi32>'}}
  %0 = tessera.softmax %x : tensor<2x3xi32>
  return
}

// -----

func.func @dropout_rate_one(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.dropout' op rate must be in [0, 1), got 1.000000e+00}}
  %0 = tessera.dropout %x {rate = 1.0 : f64, site = 0 : i64} : tensor<2x3xf32>
  return
}

// -----

func.func @dropout_rate_negative(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.dropout' op rate must be in [0, 1), got -5.000000e-01}}
  %0 = tessera.dropout %x {rate = -0.5 : f64, site = 0 : i64} : tensor<2x3xf32>
  return
}

// -----

func.func @dropout_rate_nan(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.dropout' op rate must be in [0, 1), got nan}}
  %0 = tessera.dropout %x {rate = 0x7FF8000000000000 : f64, site = 0 : i64} : tensor<2x3xf32>
  return
}

// -----

// The I64Attr getter is unsigned: -1 is reported as 2^64 - 1.
func.func @dropout_site_negative(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.dropout' op site must be a 32-bit unsigned value, got 18446744073709551615}}
  %0 = tessera.dropout %x {rate = 0.1 : f64, site = -1 : i64} : tensor<2x3xf32>
  return
}

// -----

func.func @dropout_site_wide(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.dropout' op site must be a 32-bit unsigned value, got 4294967296}}
  %0 = tessera.dropout %x {rate = 0.1 : f64, site = 4294967296 : i64} : tensor<2x3xf32>
  return
}

// -----

func.func @dropout_missing_rate(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.dropout' op requires attribute 'rate'}}
  %0 = tessera.dropout %x {site = 1 : i64} : tensor<2x3xf32>
  return
}

// -----

func.func @dropout_shape(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.dropout' op requires the same shape for all operands and results}}
  %0 = tessera.dropout %x {rate = 0.1 : f64, site = 1 : i64} : tensor<2x3xf32> -> tensor<6xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tessera.transpose, reshape, broadcast, slice, pad, concat, gather
//===----------------------------------------------------------------------===//

func.func @transpose_size(%x: tensor<2x3x4xf32>) {
  // expected-error @+1 {{'tessera.transpose' op permutation size must equal rank}}
  %0 = tessera.transpose %x [1, 0] : tensor<2x3x4xf32> -> tensor<3x2xf32>
  return
}

// -----

func.func @transpose_repeated(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.transpose' op invalid permutation}}
  %0 = tessera.transpose %x [1, 1] : tensor<2x3xf32> -> tensor<3x3xf32>
  return
}

// -----

func.func @transpose_range(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.transpose' op invalid permutation}}
  %0 = tessera.transpose %x [0, 2] : tensor<2x3xf32> -> tensor<2x3xf32>
  return
}

// -----

func.func @transpose_result_shape(%x: tensor<2x3x4xi32>) {
  // expected-error @+1 {{'tessera.transpose' op result shape [2,3,4] differs from permuted shape [4,2,3]}}
  %0 = tessera.transpose %x [2, 0, 1] : tensor<2x3x4xi32> -> tensor<2x3x4xi32>
  return
}

// -----

func.func @reshape_count(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.reshape' op reshape must keep element count and type}}
  %0 = tessera.reshape %x : tensor<2x3xf32> -> tensor<7xf32>
  return
}

// -----

func.func @reshape_type(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.reshape' op reshape must keep element count and type}}
  %0 = tessera.reshape %x : tensor<2x3xf32> -> tensor<6xf16>
  return
}

// -----

func.func @broadcast_incompatible(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.broadcast' op input [2,3] does not broadcast to [4,3]}}
  %0 = tessera.broadcast %x : tensor<2x3xf32> -> tensor<4x3xf32>
  return
}

// -----

func.func @broadcast_lower_rank(%x: tensor<2x3xi32>) {
  // expected-error @+1 {{'tessera.broadcast' op input [2,3] does not broadcast to [3]}}
  %0 = tessera.broadcast %x : tensor<2x3xi32> -> tensor<3xi32>
  return
}

// -----

func.func @slice_entries(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.slice' op starts/limits/strides must have one entry per dim}}
  %0 = tessera.slice %x {starts = array<i64: 0>, limits = array<i64: 2, 2>, strides = array<i64: 1, 1>} : tensor<4x4xf32> -> tensor<2x2xf32>
  return
}

// -----

func.func @slice_stride(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.slice' op invalid slice on dim 1}}
  %0 = tessera.slice %x {starts = array<i64: 0, 0>, limits = array<i64: 2, 2>, strides = array<i64: 1, 0>} : tensor<4x4xf32> -> tensor<2x2xf32>
  return
}

// -----

func.func @slice_limit(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.slice' op invalid slice on dim 0}}
  %0 = tessera.slice %x {starts = array<i64: 0, 0>, limits = array<i64: 5, 2>, strides = array<i64: 1, 1>} : tensor<4x4xf32> -> tensor<5x2xf32>
  return
}

// -----

func.func @slice_start(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.slice' op invalid slice on dim 1}}
  %0 = tessera.slice %x {starts = array<i64: 0, 3>, limits = array<i64: 4, 2>, strides = array<i64: 1, 1>} : tensor<4x4xf32> -> tensor<4x0xf32>
  return
}

// -----

func.func @slice_negative_start(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.slice' op invalid slice on dim 0}}
  %0 = tessera.slice %x {starts = array<i64: -1, 0>, limits = array<i64: 4, 4>, strides = array<i64: 1, 1>} : tensor<4x4xf32> -> tensor<5x4xf32>
  return
}

// -----

func.func @slice_result_shape(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.slice' op result shape [4,2] differs from sliced shape [2,2]}}
  %0 = tessera.slice %x {starts = array<i64: 0, 0>, limits = array<i64: 4, 4>, strides = array<i64: 2, 2>} : tensor<4x4xf32> -> tensor<4x2xf32>
  return
}

// -----

func.func @pad_entries(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.pad' op low/high/interior must have one entry per dim}}
  %0 = tessera.pad %x {low = array<i64: 0, 0>, high = array<i64: 1, 1>, interior = array<i64: 0>} : tensor<4x4xf32> -> tensor<5x5xf32>
  return
}

// -----

func.func @pad_negative(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.pad' op low/high/interior of dim 1 must be >= 0}}
  %0 = tessera.pad %x {low = array<i64: 0, -1>, high = array<i64: 0, 0>, interior = array<i64: 0, 0>} : tensor<4x4xf32> -> tensor<4x3xf32>
  return
}

// -----

func.func @pad_result_shape(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{'tessera.pad' op result shape [5,5] differs from padded shape [5,8]}}
  %0 = tessera.pad %x {low = array<i64: 1, 0>, high = array<i64: 0, 1>, interior = array<i64: 0, 1>} : tensor<4x4xf32> -> tensor<5x5xf32>
  return
}

// -----

func.func @pad_int(%x: tensor<4xi32>) {
  // expected-error @+1 {{'tessera.pad' op operand #0 must be statically shaped tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<4xi32>'}}
  %0 = tessera.pad %x {low = array<i64: 1>, high = array<i64: 0>, interior = array<i64: 0>} : tensor<4xi32> -> tensor<5xi32>
  return
}

// -----

func.func @concat_empty() {
  // expected-error @+1 {{'tessera.concat' op needs at least one input}}
  %0 = tessera.concat {axis = 0 : i64} : () -> tensor<0xf32>
  return
}

// -----

func.func @concat_axis(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.concat' op axis out of range}}
  %0 = tessera.concat %x, %x {axis = 2 : i64} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x6xf32>
  return
}

// -----

func.func @concat_rank(%x: tensor<2x3xf32>, %y: tensor<3xf32>) {
  // expected-error @+1 {{'tessera.concat' op inputs must have the same rank}}
  %0 = tessera.concat %x, %y {axis = 0 : i64} : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<3x3xf32>
  return
}

// -----

func.func @concat_dim(%x: tensor<2x3xf32>, %y: tensor<2x4xf32>) {
  // expected-error @+1 {{'tessera.concat' op input dim 1 differs between inputs}}
  %0 = tessera.concat %x, %y {axis = 0 : i64} : (tensor<2x3xf32>, tensor<2x4xf32>) -> tensor<4x3xf32>
  return
}

// -----

func.func @concat_element_types(%x: tensor<2x3xf32>, %y: tensor<2x3xf16>) {
  // expected-error @+1 {{'tessera.concat' op inputs have different element types}}
  %0 = tessera.concat %x, %y {axis = 1 : i64} : (tensor<2x3xf32>, tensor<2x3xf16>) -> tensor<2x6xf32>
  return
}

// -----

func.func @concat_result_shape(%x: tensor<2x3xi32>) {
  // expected-error @+1 {{'tessera.concat' op result shape [2,3] differs from concatenated shape [2,6]}}
  %0 = tessera.concat %x, %x {axis = 1 : i64} : (tensor<2x3xi32>, tensor<2x3xi32>) -> tensor<2x3xi32>
  return
}

// -----

func.func @gather_axis(%x: tensor<4x3xf32>, %i: tensor<2xi32>) {
  // expected-error @+1 {{'tessera.gather' op axis out of range}}
  %0 = tessera.gather %x[%i] {axis = 2 : i64} : (tensor<4x3xf32>, tensor<2xi32>) -> tensor<4x3xf32>
  return
}

// -----

func.func @gather_tile_beyond_table(%x: tensor<4x3xf32>, %i: tensor<2xi32>) {
  // expected-error @+1 {{'tessera.gather' op tile must be [offset, table rows] with offset >= 0 and offset + 4 <= table rows, on axis 0}}
  %0 = tessera.gather %x[%i] {tile = array<i64: 8, 10>} : (tensor<4x3xf32>, tensor<2xi32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @param_rows_count() {
  // expected-error @+1 {{'tessera.param' op rows must be [begin, end] with begin >= 0 and end - begin = the first dimension 4}}
  %0 = tessera.param frozen "w" {rows = array<i64: 0, 3>} : tensor<4x3xf32>
  return
}

// -----

func.func @param_rows_lora() {
  // expected-error @+1 {{'tessera.param' op rows: only a frozen weight can be a tile of its initializer}}
  %0 = tessera.param lora_a "w" {rows = array<i64: 0, 4>} : tensor<4x3xf32>
  return
}

// -----

func.func @gather_result_shape(%x: tensor<4x3xf32>, %i: tensor<2x5xi32>) {
  // expected-error @+1 {{'tessera.gather' op result shape [2,3] differs from gathered shape [4,2,5]}}
  %0 = tessera.gather %x[%i] {axis = 1 : i64} : (tensor<4x3xf32>, tensor<2x5xi32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @gather_index_type(%x: tensor<4x3xf32>, %i: tensor<2xi64>) {
  // expected-error @+1 {{'tessera.gather' op operand #1 must be statically shaped tensor of 32-bit signless integer values, but got 'tensor<2xi64>'}}
  %0 = tessera.gather %x[%i] : (tensor<4x3xf32>, tensor<2xi64>) -> tensor<2x3xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Raised ops: tessera.rms_norm, rope, attention, glu, embedding
//===----------------------------------------------------------------------===//

func.func @rms_norm_weight(%x: tensor<2x4xf32>, %w: tensor<3xf32>) {
  // expected-error @+1 {{'tessera.rms_norm' op weight [3] must be [N] for input [2,4] normalised over its last axis}}
  %0 = tessera.rms_norm %x, %w {eps = 1.0e-6 : f64} : (tensor<2x4xf32>, tensor<3xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @rms_norm_weight_rank(%x: tensor<2x4xf32>, %w: tensor<1x4xf32>) {
  // expected-error @+1 {{'tessera.rms_norm' op weight [1,4] must be [N] for input [2,4] normalised over its last axis}}
  %0 = tessera.rms_norm %x, %w {eps = 1.0e-6 : f64} : (tensor<2x4xf32>, tensor<1x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @rms_norm_scalar(%x: tensor<f32>, %w: tensor<1xf32>) {
  // expected-error @+1 {{'tessera.rms_norm' op weight [1] must be [N] for input [] normalised over its last axis}}
  %0 = tessera.rms_norm %x, %w {eps = 1.0e-6 : f64} : (tensor<f32>, tensor<1xf32>) -> tensor<f32>
  return
}

// -----

func.func @rms_norm_eps(%x: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{'tessera.rms_norm' op eps must be >= 0}}
  %0 = tessera.rms_norm %x, %w {eps = -1.0e-6 : f64} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @rms_norm_result_type(%x: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{'tessera.rms_norm' op failed to verify that all of {input, result} have same type}}
  %0 = "tessera.rms_norm"(%x, %w) <{eps = 1.0e-6 : f64}> : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf16>
  return
}

// -----

func.func @rope_odd(%x: tensor<1x3x5xf32>, %c: tensor<3x5xf32>) {
  // expected-error @+1 {{'tessera.rope' op input [1,3,5] must be [..., T, D] with D even}}
  %0 = tessera.rope %x, %c, %c : (tensor<1x3x5xf32>, tensor<3x5xf32>, tensor<3x5xf32>) -> tensor<1x3x5xf32>
  return
}

// -----

func.func @rope_rank(%x: tensor<4xf32>) {
  // expected-error @+1 {{'tessera.rope' op input [4] must be [..., T, D] with D even}}
  %0 = tessera.rope %x, %x, %x : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @rope_table(%x: tensor<1x3x4xf32>, %c: tensor<3x4xf32>, %s: tensor<2x3x4xf32>) {
  // expected-error @+1 {{'tessera.rope' op cos/sin table [2,3,4] does not broadcast to input [1,3,4]}}
  %0 = tessera.rope %x, %c, %s : (tensor<1x3x4xf32>, tensor<3x4xf32>, tensor<2x3x4xf32>) -> tensor<1x3x4xf32>
  return
}

// -----

func.func @rope_result_type(%x: tensor<1x3x4xf32>, %c: tensor<3x4xf32>) {
  // expected-error @+1 {{'tessera.rope' op result [3,4] must have the shape [1,3,4] (the input's, permuted)}}
  %0 = "tessera.rope"(%x, %c, %c) : (tensor<1x3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<3x4xf32>
  return
}

// -----

func.func @rope_permutation_moves_rotated_dim(%x: tensor<2x3x4xf32>, %c: tensor<3x4xf32>) {
  // expected-error @+1 {{'tessera.rope' op input_permutation must permute the input's dims and keep the last in place}}
  %0 = "tessera.rope"(%x, %c, %c) {input_permutation = array<i64: 0, 2, 1>} : (tensor<2x3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<2x4x3xf32>
  return
}

// -----

func.func @rope_result_permutation_shape(%x: tensor<2x3x4xf32>, %c: tensor<3x4xf32>) {
  // expected-error @+1 {{'tessera.rope' op result [2,3,4] must have the shape [3,2,4] (the input's, permuted)}}
  %0 = "tessera.rope"(%x, %c, %c) {result_permutation = array<i64: 1, 0, 2>} : (tensor<2x3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

func.func @rope_permuted_tables(%x: tensor<3x2x4xf32>, %c: tensor<3x4xf32>, %t: tensor<2x4xf32>) {
  // The tables broadcast to the rotated shape [2, 3, 4], not to the input's.
  // expected-error @+1 {{'tessera.rope' op cos/sin table [2,4] does not broadcast to input [2,3,4]}}
  %0 = "tessera.rope"(%x, %c, %t) {input_permutation = array<i64: 1, 0, 2>} : (tensor<3x2x4xf32>, tensor<3x4xf32>, tensor<2x4xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

func.func @attention_rank(%q: tensor<2x3x8xf32>) {
  // expected-error @+1 {{'tessera.attention' op query, key and value must be [B, heads, seq, head_dim]}}
  %0 = tessera.attention %q, %q, %q {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

func.func @attention_groups(%q: tensor<1x4x3x8xf32>, %k: tensor<1x2x3x8xf32>) {
  // expected-error @+1 {{'tessera.attention' op query [1,4,3,8], key [1,2,3,8] and value [1,2,3,8] do not fit kv_groups = 3}}
  %0 = tessera.attention %q, %k, %k {scale = 1.0 : f64, kv_groups = 3 : i64} : (tensor<1x4x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>) -> tensor<1x4x3x8xf32>
  return
}

// -----

func.func @attention_zero_groups(%q: tensor<1x2x3x8xf32>) {
  // expected-error @+1 {{'tessera.attention' op query [1,2,3,8], key [1,2,3,8] and value [1,2,3,8] do not fit kv_groups = 0}}
  %0 = tessera.attention %q, %q, %q {scale = 1.0 : f64, kv_groups = 0 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32>
  return
}

// -----

func.func @flash_attention_groups(%q: tensor<1x4x3x8xf32>, %k: tensor<1x2x3x8xf32>) {
  // expected-error @+1 {{'tessera.flash_attention' op query [1,4,3,8], key [1,2,3,8] and value [1,2,3,8] do not fit kv_groups = 1}}
  %0:2 = tessera.flash_attention %q, %k, %k {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x4x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>) -> (tensor<1x4x3x8xf32>, tensor<1x4x3xf32>)
  return
}

// -----

func.func @flash_attention_lse(%q: tensor<1x2x3x8xbf16>) {
  // expected-error @+1 {{'tessera.flash_attention' op lse must be f32 [1,2,3]}}
  %0:2 = tessera.flash_attention %q, %q, %q {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xbf16>, tensor<1x2x3x8xbf16>, tensor<1x2x3x8xbf16>) -> (tensor<1x2x3x8xbf16>, tensor<1x2x3xbf16>)
  return
}

// -----

func.func @flash_attention_mask_type(%q: tensor<1x2x3x8xf32>, %m: tensor<3x3xbf16>) {
  // expected-error @+1 {{'tessera.flash_attention' op mask must be f32}}
  %0:2 = tessera.flash_attention %q, %q, %q mask %m {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<3x3xbf16>) -> (tensor<1x2x3x8xf32>, tensor<1x2x3xf32>)
  return
}

// -----

func.func @flash_attention_mask_shape(%q: tensor<1x2x3x8xf32>, %m: tensor<4x3xf32>) {
  // expected-error @+1 {{'tessera.flash_attention' op mask [4,3] does not broadcast to scores [1,2,3,3]}}
  %0:2 = tessera.flash_attention %q, %q, %q mask %m {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<4x3xf32>) -> (tensor<1x2x3x8xf32>, tensor<1x2x3xf32>)
  return
}

// -----

func.func @flash_attention_result(%q: tensor<1x2x3x8xf32>) {
  // expected-error @+1 {{'tessera.flash_attention' op result must have the query's shape}}
  %0:2 = tessera.flash_attention %q, %q, %q {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>) -> (tensor<1x2x8x3xf32>, tensor<1x2x3xf32>)
  return
}

// -----

func.func @flash_attention_grad_dout(%q: tensor<1x2x3x8xf32>, %l: tensor<1x2x3xf32>, %d: tensor<1x2x3x4xf32>) {
  // expected-error @+1 {{'tessera.flash_attention_grad' op out and dout must have the query's shape}}
  %0:3 = tessera.flash_attention_grad %q, %q, %q, %q, %l, %d {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3xf32>, tensor<1x2x3x4xf32>) -> (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>)
  return
}

// -----

func.func @flash_attention_grad_lse(%q: tensor<1x2x3x8xf32>, %l: tensor<1x2x4xf32>) {
  // expected-error @+1 {{'tessera.flash_attention_grad' op lse must be f32 [1,2,3]}}
  %0:3 = tessera.flash_attention_grad %q, %q, %q, %q, %l, %q {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x4xf32>, tensor<1x2x3x8xf32>) -> (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>)
  return
}

// -----

func.func @flash_attention_grad_results(%q: tensor<1x2x3x8xf32>, %l: tensor<1x2x3xf32>) {
  // expected-error @+1 {{'tessera.flash_attention_grad' op dquery, dkey and dvalue must have the shapes of query, key and value}}
  %0:3 = tessera.flash_attention_grad %q, %q, %q, %q, %l, %q {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3xf32>, tensor<1x2x3x8xf32>) -> (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x4xf32>)
  return
}

// -----

func.func @attention_value_shape(%q: tensor<1x2x3x8xf32>, %v: tensor<1x2x4x8xf32>) {
  // expected-error @+1 {{'tessera.attention' op query [1,2,3,8], key [1,2,3,8] and value [1,2,4,8] do not fit kv_groups = 1}}
  %0 = tessera.attention %q, %q, %v {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x4x8xf32>) -> tensor<1x2x3x8xf32>
  return
}

// -----

func.func @attention_head_dim(%q: tensor<1x2x3x8xf32>, %k: tensor<1x2x3x4xf32>) {
  // expected-error @+1 {{'tessera.attention' op query [1,2,3,8], key [1,2,3,4] and value [1,2,3,4] do not fit kv_groups = 1}}
  %0 = tessera.attention %q, %k, %k {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x3x4xf32>, tensor<1x2x3x4xf32>) -> tensor<1x2x3x8xf32>
  return
}

// -----

func.func @attention_result_shape(%q: tensor<1x2x3x8xf32>, %k: tensor<1x2x5x8xf32>) {
  // expected-error @+1 {{'tessera.attention' op result must have the query's shape}}
  %0 = tessera.attention %q, %k, %k {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>) -> tensor<1x2x5x8xf32>
  return
}

// -----

func.func @attention_mask(%q: tensor<1x2x3x8xf32>, %m: tensor<1x1x3x4xf32>) {
  // expected-error @+1 {{'tessera.attention' op mask [1,1,3,4] does not broadcast to scores [1,2,3,3]}}
  %0 = tessera.attention %q, %q, %q mask %m {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x1x3x4xf32>) -> tensor<1x2x3x8xf32>
  return
}

// -----

func.func @attention_missing_scale(%q: tensor<1x2x3x8xf32>) {
  // expected-error @+1 {{'tessera.attention' op requires attribute 'scale'}}
  %0 = tessera.attention %q, %q, %q {kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32>
  return
}

// -----

func.func @glu_types(%g: tensor<2x6xf32>, %u: tensor<2x6xf16>) {
  // expected-error @+1 {{'tessera.glu' op failed to verify that all of {gate, up, result} have same type}}
  %0 = "tessera.glu"(%g, %u) <{act = #tessera<glu_activation silu>}> : (tensor<2x6xf32>, tensor<2x6xf16>) -> tensor<2x6xf32>
  return
}

// -----

func.func @embedding_table(%t: tensor<10xf32>, %ids: tensor<2x3xi32>) {
  // expected-error @+1 {{'tessera.embedding' op table must be [vocab, hidden]}}
  %0 = tessera.embedding %t[%ids] : (tensor<10xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @embedding_result_shape(%t: tensor<10x4xf32>, %ids: tensor<2x3xi32>) {
  // expected-error @+1 {{'tessera.embedding' op result shape must be [2,3,4]}}
  %0 = tessera.embedding %t[%ids] : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<2x3x5xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tessera.cross_entropy, cross_entropy_grad, adamw_update
//===----------------------------------------------------------------------===//

func.func @cross_entropy_labels(%l: tensor<2x3x10xf32>, %t: tensor<2x4xi32>) {
  // expected-error @+1 {{'tessera.cross_entropy' op logits [2,3,10] and labels [2,4] must be [..., V] and [...]}}
  %0 = tessera.cross_entropy %l, %t : (tensor<2x3x10xf32>, tensor<2x4xi32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_labels_rank(%l: tensor<2x3x10xf32>, %t: tensor<2x3x10xi32>) {
  // expected-error @+1 {{'tessera.cross_entropy' op logits [2,3,10] and labels [2,3,10] must be [..., V] and [...]}}
  %0 = tessera.cross_entropy %l, %t : (tensor<2x3x10xf32>, tensor<2x3x10xi32>) -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_loss_type(%l: tensor<2x3x10xf32>, %t: tensor<2x3xi32>) {
  // expected-error @+1 {{'tessera.cross_entropy' op result #0 must be 0D tensor of 32-bit float values, but got 'tensor<f16>'}}
  %0 = tessera.cross_entropy %l, %t : (tensor<2x3x10xf32>, tensor<2x3xi32>) -> tensor<f16>
  return
}

// -----

func.func @cross_entropy_grad_result(%l: tensor<2x3x10xf32>, %t: tensor<2x3xi32>, %d: tensor<f32>) {
  // expected-error @+1 {{'tessera.cross_entropy_grad' op result shape must equal the logits shape}}
  %0 = tessera.cross_entropy_grad %l, %t, %d : (tensor<2x3x10xf32>, tensor<2x3xi32>, tensor<f32>) -> tensor<2x3xf32>
  return
}

// -----

func.func @cross_entropy_grad_labels(%l: tensor<2x3x10xf32>, %t: tensor<3x2xi32>, %d: tensor<f32>) {
  // expected-error @+1 {{'tessera.cross_entropy_grad' op logits [2,3,10] and labels [3,2] must be [..., V] and [...]}}
  %0 = tessera.cross_entropy_grad %l, %t, %d : (tensor<2x3x10xf32>, tensor<3x2xi32>, tensor<f32>) -> tensor<2x3x10xf32>
  return
}

// -----

func.func @cross_entropy_grad_dloss(%l: tensor<2x3x10xf32>, %t: tensor<2x3xi32>, %d: tensor<1xf32>) {
  // expected-error @+1 {{'tessera.cross_entropy_grad' op operand #2 must be 0D tensor of 32-bit float values, but got 'tensor<1xf32>'}}
  %0 = tessera.cross_entropy_grad %l, %t, %d : (tensor<2x3x10xf32>, tensor<2x3xi32>, tensor<1xf32>) -> tensor<2x3x10xf32>
  return
}

// -----

func.func @adamw_update_hparams(%g: tensor<4x2xf32>, %hp: tensor<8xf16>) {
  // expected-error @+1 {{'tessera.adamw_update' op operand #1 must be statically shaped tensor of 32-bit float values, but got 'tensor<8xf16>'}}
  tessera.adamw_update "m.lora_A", %g, %hp : tensor<4x2xf32>, tensor<8xf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Execution level: tessera.buffer, program, dispatch
//===----------------------------------------------------------------------===//

tessera.buffer input @a : memref<2xf32>
// expected-error @+2 {{redefinition of symbol named 'a'}}
// expected-note @-2 {{see existing symbol definition here}}
tessera.buffer weight @a : memref<2xf32>

// -----

tessera.program @p {
  // expected-error @+1 {{'tessera.buffer' op symbol's parent must have the SymbolTable trait}}
  tessera.buffer activation @v : memref<2xf32>
}

// -----

// expected-error @+1 {{'tessera.program' op expects region #0 to have 0 or 1 blocks}}
"tessera.program"() <{sym_name = "p"}> ({
^bb0:
  "tessera.dispatch"() <{kernel = @k, buffers = [], workgroups = array<i64: 1, 1, 1>}> : () -> ()
^bb1:
}) : () -> ()

// -----

func.func @dispatch_outside_program() {
  // expected-error @+1 {{'tessera.dispatch' op expects parent op 'tessera.program'}}
  tessera.dispatch @k [@a] workgroups [1, 1, 1]
  return
}

// -----

tessera.program @p {
  // expected-error @+1 {{'tessera.dispatch' op requires attribute 'workgroups'}}
  "tessera.dispatch"() <{kernel = @k, buffers = [@a]}> : () -> ()
}

// -----

// A product of mma and subgroups that would wrap to 0 is refused before it is formed.
// expected-error @+1 {{coopmat mma and subgroups sizes must be <= 1024}}
func.func private @wrap() attributes {c = #tessera.matmul_config<variant = "", kind = coopmat, tile = [64, 64, 16], thread = [32, 8], split_k = 1, mma = [4611686018427387904, 16, 16], subgroups = [4, 1], operands = f16>}

// -----

// expected-error @+1 {{coopmat subgroup size (thread[0]) must be a power of two}}
func.func private @sg() attributes {c = #tessera.matmul_config<variant = "", kind = coopmat, tile = [64, 64, 16], thread = [24, 8], split_k = 1, mma = [16, 16, 16], subgroups = [2, 2], operands = f16>}

// -----

// Data movement may store its result in another float type, never turn floats into integers.
func.func @broadcast_to_int(%x: tensor<3xf32>) -> tensor<2x3xi32> {
  // expected-error @+1 {{result element type 'i32' differs from 'f32'}}
  %0 = tessera.broadcast %x : tensor<3xf32> -> tensor<2x3xi32>
  return %0 : tensor<2x3xi32>
}

// -----

func.func @transpose_to_bool(%x: tensor<3x2xf32>) -> tensor<2x3xi1> {
  // expected-error @+1 {{result element type 'i1' differs from 'f32'}}
  %0 = tessera.transpose %x [1, 0] : tensor<3x2xf32> -> tensor<2x3xi1>
  return %0 : tensor<2x3xi1>
}

// -----

func.func @rms_norm_nan_eps(%x: tensor<2x4xf32>, %w: tensor<4xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{eps must be >= 0}}
  %0 = tessera.rms_norm %x, %w {eps = 0x7FF8000000000000 : f64} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// -----

tessera.program @p {
  // expected-error @+1 {{workgroups must be [x, y, z], got 2 counts}}
  tessera.dispatch @k [@a] workgroups [1, 1]
}

// -----

tessera.program @p {
  // expected-error @+1 {{workgroup counts must be in [0, 2^32 - 1], got -3}}
  tessera.dispatch @k [@a] workgroups [1, -3, 1]
}

// -----

func.func @fused_arity(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // expected-error @+1 {{body has 2 arguments for 1 inputs}}
  %0 = tessera.fused_elementwise ins(%x : tensor<2x3xf32>) {
  ^bb0(%a: tensor<f32>, %b: tensor<f32>):
    %s = tessera.binary add %a, %b : (tensor<f32>, tensor<f32>) -> tensor<f32>
    tessera.yield %s : tensor<f32>
  } : tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

func.func @fused_arg_type(%x: tensor<2x3xbf16>) -> tensor<2x3xf32> {
  // expected-error @+1 {{body argument 0 must be 'tensor<bf16>', the element of input 0, got 'tensor<f32>'}}
  %0 = tessera.fused_elementwise ins(%x : tensor<2x3xbf16>) {
  ^bb0(%a: tensor<f32>):
    %s = tessera.unary exp %a : tensor<f32>
    tessera.yield %s : tensor<f32>
  } : tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

func.func @fused_broadcast(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  // expected-error @+1 {{input 0 of shape [2,4] does not broadcast to the result shape [2,3]}}
  %0 = tessera.fused_elementwise ins(%x : tensor<2x4xf32>) {
  ^bb0(%a: tensor<f32>):
    %s = tessera.unary exp %a : tensor<f32>
    tessera.yield %s : tensor<f32>
  } : tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

func.func @fused_reduce(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = tessera.fused_elementwise ins(%x : tensor<2x3xf32>) {
  ^bb0(%a: tensor<f32>):
    // expected-error @+1 {{cannot be in a fused_elementwise body (only unary, binary, select and cast)}}
    %s = tessera.softmax %a : tensor<f32>
    tessera.yield %s : tensor<f32>
  } : tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

func.func @fused_capture(%x: tensor<2x3xf32>, %y: tensor<f32>) -> tensor<2x3xf32> {
  %0 = tessera.fused_elementwise ins(%x : tensor<2x3xf32>) {
  ^bb0(%a: tensor<f32>):
    // expected-error @+1 {{reads a value from outside it: pass it as an input}}
    %s = tessera.binary mul %a, %y : (tensor<f32>, tensor<f32>) -> tensor<f32>
    tessera.yield %s : tensor<f32>
  } : tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

func.func @fused_yield_type(%x: tensor<2x3xf32>) -> tensor<2x3xbf16> {
  // expected-error @+1 {{body yields 'f32' for result 0 of 'bf16'}}
  %0 = tessera.fused_elementwise ins(%x : tensor<2x3xf32>) {
  ^bb0(%a: tensor<f32>):
    %s = tessera.unary exp %a : tensor<f32>
    tessera.yield %s : tensor<f32>
  } : tensor<2x3xbf16>
  return %0 : tensor<2x3xbf16>
}

// -----

func.func @fused_yield_count(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // expected-error @+1 {{body yields 1 values for 2 results}}
  %0:2 = tessera.fused_elementwise ins(%x : tensor<2x3xf32>) {
  ^bb0(%a: tensor<f32>):
    %s = tessera.unary exp %a : tensor<f32>
    tessera.yield %s : tensor<f32>
  } : tensor<2x3xf32>, tensor<2x3xf32>
  return %0#0 : tensor<2x3xf32>
}

// -----

func.func @fused_result_shapes(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // expected-error @+1 {{results must share one shape, got [2,3] and [3]}}
  %0:2 = tessera.fused_elementwise ins(%x : tensor<2x3xf32>) {
  ^bb0(%a: tensor<f32>):
    %s = tessera.unary exp %a : tensor<f32>
    tessera.yield %s, %s : tensor<f32>, tensor<f32>
  } : tensor<2x3xf32>, tensor<3xf32>
  return %0#0 : tensor<2x3xf32>
}

// -----

//===----------------------------------------------------------------------===//
// tessera.act_quant
//===----------------------------------------------------------------------===//

func.func @act_quant_scalar(%x: tensor<f32>) {
  // expected-error @+1 {{'tessera.act_quant' op input must have at least one axis (rows are quantised over the last)}}
  %0 = tessera.act_quant %x : tensor<f32>
  return
}

// -----

func.func @act_quant_eps(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.act_quant' op eps must be > 0}}
  %0 = tessera.act_quant %x {eps = 0.0 : f64} : tensor<2x3xf32>
  return
}

// -----

func.func @act_quant_types(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{'tessera.act_quant' op requires the same type for all operands and results}}
  %0 = "tessera.act_quant"(%x) <{eps = 1.0e-5 : f64}> : (tensor<2x3xf32>) -> tensor<2x3xf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// tessera.bitlinear_matmul
//===----------------------------------------------------------------------===//

func.func @bitlinear_matmul_rank(%x: tensor<8xf32>, %c: tensor<4x8xf32>, %s: tensor<f32>) {
  // expected-error @+1 {{'tessera.bitlinear_matmul' op input must be [..., M, K]}}
  %0 = tessera.bitlinear_matmul %x, %c, %s : (tensor<8xf32>, tensor<4x8xf32>, tensor<f32>) -> tensor<4xf32>
  return
}

// -----

func.func @bitlinear_matmul_codes(%x: tensor<2x8xf32>, %c: tensor<1x4x8xf32>, %s: tensor<f32>) {
  // expected-error @+1 {{'tessera.bitlinear_matmul' op codes must be [N, K]}}
  %0 = tessera.bitlinear_matmul %x, %c, %s : (tensor<2x8xf32>, tensor<1x4x8xf32>, tensor<f32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @bitlinear_matmul_scale(%x: tensor<2x8xf32>, %c: tensor<4x8xf32>, %s: tensor<1xf32>) {
  // expected-error @+1 {{'tessera.bitlinear_matmul' op scale must be rank 0 (one value per weight)}}
  %0 = tessera.bitlinear_matmul %x, %c, %s : (tensor<2x8xf32>, tensor<4x8xf32>, tensor<1xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @bitlinear_matmul_k(%x: tensor<2x8xf32>, %c: tensor<4x12xf32>, %s: tensor<f32>) {
  // expected-error @+1 {{'tessera.bitlinear_matmul' op contraction sizes differ: 8 vs 12}}
  %0 = tessera.bitlinear_matmul %x, %c, %s : (tensor<2x8xf32>, tensor<4x12xf32>, tensor<f32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @bitlinear_matmul_packed(%x: tensor<2x6xf32>, %c: tensor<4x6xf32>, %s: tensor<f32>) {
  // expected-error @+1 {{'tessera.bitlinear_matmul' op K = 6 is not a multiple of 4 (codes are packed four to a word)}}
  %0 = tessera.bitlinear_matmul %x, %c, %s : (tensor<2x6xf32>, tensor<4x6xf32>, tensor<f32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @bitlinear_matmul_result(%x: tensor<2x8xf32>, %c: tensor<4x8xf32>, %s: tensor<f32>) {
  // expected-error @+1 {{'tessera.bitlinear_matmul' op result shape must be the input's with N = 4 as its last axis}}
  %0 = tessera.bitlinear_matmul %x, %c, %s : (tensor<2x8xf32>, tensor<4x8xf32>, tensor<f32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @bitlinear_matmul_eps(%x: tensor<2x8xf32>, %c: tensor<4x8xf32>, %s: tensor<f32>) {
  // expected-error @+1 {{'tessera.bitlinear_matmul' op eps must be > 0}}
  %0 = tessera.bitlinear_matmul %x, %c, %s {eps = 0.0 : f64} : (tensor<2x8xf32>, tensor<4x8xf32>, tensor<f32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @bitlinear_matmul_config(%x: tensor<2x8xf32>, %c: tensor<4x8xf32>, %s: tensor<f32>) {
  // expected-error @+1 {{'tessera.bitlinear_matmul' op kernel config #tessera.elementwise_config<workgroup_size = 64> does not fit this op}}
  %0 = tessera.bitlinear_matmul %x, %c, %s {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 64>} : (tensor<2x8xf32>, tensor<4x8xf32>, tensor<f32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @ternary_on_lora() {
  // expected-error @+1 {{'tessera.param' op 'tessera.ternary' belongs on a frozen tessera.param or its tessera.buffer}}
  %0 = tessera.param lora_a "a" {tessera.ternary = "codes", tessera.ternary_eps = 1.0e-5 : f64} : tensor<4x8xf32>
  return
}

// -----

func.func @ternary_part() {
  // expected-error @+1 {{'tessera.param' op 'tessera.ternary' must be "codes" or "scale"}}
  %0 = tessera.param frozen "w" {tessera.ternary = "signs", tessera.ternary_eps = 1.0e-5 : f64} : tensor<4x8xf32>
  return
}

// -----

func.func @ternary_scale_rank() {
  // expected-error @+1 {{'tessera.param' op 'tessera.ternary': ternary codes are a 2-D weight, the scale a rank-0 value}}
  %0 = tessera.param frozen "w" {tessera.ternary = "scale", tessera.ternary_eps = 1.0e-5 : f64} : tensor<4x8xf32>
  return
}

// -----

func.func @ternary_eps() {
  // expected-error @+1 {{'tessera.param' op 'tessera.ternary' needs tessera.ternary_eps}}
  %0 = tessera.param frozen "w" {tessera.ternary = "codes"} : tensor<4x8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// fused_matmul, skinny matmul_config
//===----------------------------------------------------------------------===//

func.func @fused_matmul_addend_shape(%x: tensor<4x8xf32>, %w: tensor<16x8xf32>, %d: tensor<16xf32>) {
  // expected-error @+1 {{addend of shape [16] must have the result's shape [4,16]}}
  %0 = tessera.fused_matmul %x, %w plus %d {transpose_rhs = true} : (tensor<4x8xf32>, tensor<16x8xf32>), tensor<16xf32> -> tensor<4x16xf32>
  return
}

// -----

func.func @fused_matmul_contraction(%x: tensor<4x8xf32>, %w: tensor<16x9xf32>) {
  // expected-error @+1 {{contraction sizes differ: 8 vs 9}}
  %0 = tessera.fused_matmul %x, %w {transpose_rhs = true} : (tensor<4x8xf32>, tensor<16x9xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @fused_matmul_result_shape(%x: tensor<4x8xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{result shape [4,8] differs from broadcast shape [4,16]}}
  %0 = tessera.fused_matmul %x, %w {transpose_rhs = true} : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @fused_matmul_alpha(%x: tensor<4x8xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{alpha must be finite}}
  %0 = tessera.fused_matmul %x, %w {alpha = 0x7FF0000000000000 : f64, transpose_rhs = true} : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>
  return
}

// -----

func.func @matmul_config_skinny_thread(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{a skinny matmul_config's thread is [threads, 1]}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "", kind = skinny, tile = [4, 16, 64], thread = [64, 2], split_k = 1>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}

// -----

func.func @matmul_config_skinny_tile(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{a skinny matmul_config's tile_m * tile_n must be <= 128}}
  %0 = tessera.matmul %x, %x {tessera.kernel_config = #tessera.matmul_config<variant = "", kind = skinny, tile = [16, 16, 64], thread = [64, 1], split_k = 1>} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  return
}
