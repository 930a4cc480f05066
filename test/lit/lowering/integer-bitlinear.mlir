// tessera-integer-bitlinear: a BitLinear's forward chain
// mul(matmul(act_quant(x), codes^T), scale) over TQ2_0 ternary codes becomes
// one tessera.bitlinear_matmul (its names kept; act_quant erased once nothing
// else reads it). Near misses keep the f32 ops: codes kept as floats, codes
// stored transposed, a product read twice, a scale that is not the weight's.
// Then the lowering: two kernels (the int8 quantiser, the integer product),
// OpSDot with the packed 4x8-bit format only under a profile with
// integer_dot_product (lavapipe), integer multiply-adds under the default;
// spirv-val accepts every module.
// RUN: tessera-opt %s --tessera-integer-bitlinear | FileCheck %s
// RUN: rm -rf %t && mkdir -p %t/lavapipe %t/default
// RUN: tessera-opt %s --tessera-integer-bitlinear --tessera-select-kernel-configs=profile=%repo/autotune/profiles/lavapipe.json --tessera-lower-to-kernels --tessera-kernels-to-spirv=dump-dir=%t/lavapipe | FileCheck %s --check-prefix=DOT
// RUN: %python %S/../spirv/validate_spirv.py %t/lavapipe vulkan1.3 | FileCheck %s --check-prefix=VALID
// RUN: tessera-opt %s --tessera-integer-bitlinear --tessera-select-kernel-configs --tessera-lower-to-kernels --tessera-kernels-to-spirv=dump-dir=%t/default | FileCheck %s --check-prefix=MULADD
// RUN: %python %S/../spirv/validate_spirv.py %t/default vulkan1.1 | FileCheck %s --check-prefix=VALID

// CHECK-LABEL: func.func @loss
// CHECK: %[[X:.*]] = tessera.param frozen "x" :
// CHECK-NOT: tessera.act_quant
// CHECK: %[[C:.*]] = tessera.param frozen "u" {tessera.quant = "tq2_0", tessera.ternary = "codes"
// CHECK: %[[S:.*]] = tessera.param frozen "u" {tessera.ternary = "scale"
// CHECK: tessera.bitlinear_matmul %[[X]], %[[C]], %[[S]] {tessera.layer = 0 : i64, tessera.module = "layers.0.mlp.up_proj"} : (tensor<2x3x256xf32>, tensor<66x256xf32>, tensor<f32>) -> tensor<2x3x66xf32>
// The second BitLinear reads an act_quant that something else reads too: it stays.
// CHECK: %[[X2:.*]] = tessera.param frozen "x2"
// CHECK-NEXT: tessera.act_quant %[[X2]] : tensor<2x3x256xf32>
// CHECK: tessera.bitlinear_matmul %[[X2]], {{.*}} {tessera.module = "layers.0.mlp.gate_proj"}
// Near misses: float codes, transposed storage, a product read twice, another scale.
// CHECK: tessera.matmul {{.*}}"layers.0.mlp.float_codes"
// CHECK: tessera.matmul {{.*}}"layers.0.mlp.transposed"
// CHECK: tessera.matmul {{.*}}"layers.0.mlp.read_twice"
// CHECK: tessera.matmul {{.*}}"layers.0.mlp.other_scale"
// CHECK-NOT: tessera.bitlinear_matmul

// DOT: tessera.dispatch @bitlinear_quant_[[QK:[0-9]+]] [@x, @[[CODES:eval.v[0-9]+.codes]], @[[ROWS:eval.v[0-9]+.row_scale]]]
// DOT-NEXT: tessera.dispatch @bitlinear_matmul_[[MK:[0-9]+]] [@[[CODES]], @[[ROWS]], @u_ternary_codes, @u_ternary_scale, @{{.*}}]
// DOT: spirv.module @bitlinear_matmul_[[MK]] Logical GLSL450 requires #spirv.vce<{{.*}}[Shader, DotProduct, DotProductInput4x8BitPacked], [SPV_KHR_storage_buffer_storage_class, SPV_KHR_integer_dot_product]>
// DOT: spirv.SDot {{.*}}, {{.*}}, <PackedVectorFormat4x8Bit> : i32 -> i32
// MULADD: tessera.dispatch @bitlinear_quant_{{[0-9]+}}
// MULADD-NEXT: tessera.dispatch @bitlinear_matmul_{{[0-9]+}}
// MULADD-NOT: DotProduct
// MULADD-NOT: spirv.SDot
// VALID-NOT: INVALID
// VALID: modules, 0 invalid
func.func @loss(%ids: tensor<2x8xi32>, %labels: tensor<2x8xi32>) -> tensor<f32> {
  %x = tessera.param frozen "x" : tensor<2x3x256xf32>
  %q0 = tessera.act_quant %x : tensor<2x3x256xf32>
  %u = tessera.param frozen "u" {tessera.quant = "tq2_0", tessera.ternary = "codes", tessera.ternary_eps = 1.0e-5 : f64} : tensor<66x256xf32>
  %h = tessera.matmul %q0, %u {tessera.module = "layers.0.mlp.up_proj", tessera.layer = 0 : i64, transpose_rhs = true} : (tensor<2x3x256xf32>, tensor<66x256xf32>) -> tensor<2x3x66xf32>
  %us = tessera.param frozen "u" {tessera.ternary = "scale", tessera.ternary_eps = 1.0e-5 : f64} : tensor<f32>
  %hs = tessera.binary mul %h, %us : (tensor<2x3x66xf32>, tensor<f32>) -> tensor<2x3x66xf32>
  %r0 = tessera.reduce sum %hs {axes = array<i64: 0, 1, 2>} : tensor<2x3x66xf32> -> tensor<f32>

  %x2 = tessera.param frozen "x2" : tensor<2x3x256xf32>
  %q2 = tessera.act_quant %x2 : tensor<2x3x256xf32>
  %g = tessera.param frozen "g" {tessera.quant = "tq2_0", tessera.ternary = "codes", tessera.ternary_eps = 1.0e-5 : f64} : tensor<8x256xf32>
  %gh = tessera.matmul %q2, %g {tessera.module = "layers.0.mlp.gate_proj", transpose_rhs = true} : (tensor<2x3x256xf32>, tensor<8x256xf32>) -> tensor<2x3x8xf32>
  %gs = tessera.param frozen "g" {tessera.ternary = "scale", tessera.ternary_eps = 1.0e-5 : f64} : tensor<f32>
  %ghs = tessera.binary mul %gs, %gh : (tensor<f32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
  %r1 = tessera.reduce sum %ghs {axes = array<i64: 0, 1, 2>} : tensor<2x3x8xf32> -> tensor<f32>
  %r2 = tessera.reduce sum %q2 {axes = array<i64: 0, 1, 2>} : tensor<2x3x256xf32> -> tensor<f32>

  %x3 = tessera.param frozen "x3" : tensor<2x3x256xf32>
  %q = tessera.act_quant %x3 : tensor<2x3x256xf32>
  %f = tessera.param frozen "f" {tessera.ternary = "codes", tessera.ternary_eps = 1.0e-5 : f64} : tensor<8x256xf32>
  %fh = tessera.matmul %q, %f {tessera.module = "layers.0.mlp.float_codes", transpose_rhs = true} : (tensor<2x3x256xf32>, tensor<8x256xf32>) -> tensor<2x3x8xf32>
  %fs = tessera.param frozen "f" {tessera.ternary = "scale", tessera.ternary_eps = 1.0e-5 : f64} : tensor<f32>
  %fhs = tessera.binary mul %fh, %fs : (tensor<2x3x8xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  %r3 = tessera.reduce sum %fhs {axes = array<i64: 0, 1, 2>} : tensor<2x3x8xf32> -> tensor<f32>

  %t = tessera.param frozen "t" {tessera.quant = "tq2_0", tessera.quant_transposed, tessera.ternary = "codes", tessera.ternary_eps = 1.0e-5 : f64} : tensor<256x8xf32>
  %th = tessera.matmul %q, %t {tessera.module = "layers.0.mlp.transposed"} : (tensor<2x3x256xf32>, tensor<256x8xf32>) -> tensor<2x3x8xf32>
  %ts = tessera.param frozen "t" {tessera.ternary = "scale", tessera.ternary_eps = 1.0e-5 : f64} : tensor<f32>
  %ths = tessera.binary mul %th, %ts : (tensor<2x3x8xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  %r4 = tessera.reduce sum %ths {axes = array<i64: 0, 1, 2>} : tensor<2x3x8xf32> -> tensor<f32>

  %d = tessera.param frozen "d" {tessera.quant = "tq2_0", tessera.ternary = "codes", tessera.ternary_eps = 1.0e-5 : f64} : tensor<8x256xf32>
  %dh = tessera.matmul %q, %d {tessera.module = "layers.0.mlp.read_twice", transpose_rhs = true} : (tensor<2x3x256xf32>, tensor<8x256xf32>) -> tensor<2x3x8xf32>
  %ds = tessera.param frozen "d" {tessera.ternary = "scale", tessera.ternary_eps = 1.0e-5 : f64} : tensor<f32>
  %dhs = tessera.binary mul %dh, %ds : (tensor<2x3x8xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  %dd = tessera.binary add %dhs, %dh : (tensor<2x3x8xf32>, tensor<2x3x8xf32>) -> tensor<2x3x8xf32>
  %r5 = tessera.reduce sum %dd {axes = array<i64: 0, 1, 2>} : tensor<2x3x8xf32> -> tensor<f32>

  %o = tessera.param frozen "o" {tessera.quant = "tq2_0", tessera.ternary = "codes", tessera.ternary_eps = 1.0e-5 : f64} : tensor<8x256xf32>
  %oh = tessera.matmul %q, %o {tessera.module = "layers.0.mlp.other_scale", transpose_rhs = true} : (tensor<2x3x256xf32>, tensor<8x256xf32>) -> tensor<2x3x8xf32>
  %os = tessera.param frozen "os" : tensor<f32>
  %ohs = tessera.binary mul %oh, %os : (tensor<2x3x8xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  %r6 = tessera.reduce sum %ohs {axes = array<i64: 0, 1, 2>} : tensor<2x3x8xf32> -> tensor<f32>

  %a0 = tessera.binary add %r0, %r1 : (tensor<f32>, tensor<f32>) -> tensor<f32>
  %a1 = tessera.binary add %a0, %r2 : (tensor<f32>, tensor<f32>) -> tensor<f32>
  %a2 = tessera.binary add %a1, %r3 : (tensor<f32>, tensor<f32>) -> tensor<f32>
  %a3 = tessera.binary add %a2, %r4 : (tensor<f32>, tensor<f32>) -> tensor<f32>
  %a4 = tessera.binary add %a3, %r5 : (tensor<f32>, tensor<f32>) -> tensor<f32>
  %a5 = tessera.binary add %a4, %r6 : (tensor<f32>, tensor<f32>) -> tensor<f32>
  return %a5 : tensor<f32>
}
