// Round trip of every op of the Tessera dialect and of the kernel-config
// attributes: parsed, printed, parsed again; the second RUN goes through the
// generic form. The GENERIC lines pin the generic spelling of properties and
// dialect enum attributes.
// RUN: tessera-opt %s | tessera-opt | FileCheck %s
// RUN: tessera-opt %s --mlir-print-op-generic | tessera-opt | FileCheck %s
// RUN: tessera-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC

// The module's kernel target (a dictionary: its keys print sorted).
// CHECK: module attributes {tessera.kernel_target = {elementwise = #tessera.elementwise_config<workgroup_size = 64>, max_workgroup_count = 65535 : i64, profile = "test", reduce = #tessera.reduction_config<strategy = workgroup, workgroup_size = 128>}} {
// GENERIC: "builtin.module"() ({
module attributes {tessera.kernel_target = {profile = "test", max_workgroup_count = 65535 : i64, elementwise = #tessera.elementwise_config<workgroup_size = 64>, reduce = #tessera.reduction_config<strategy = workgroup, workgroup_size = 128>}} {

//===----------------------------------------------------------------------===//
// Leaves: param (every kind), constant (float, i32, i1)
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @leaves()
// CHECK-NEXT: %[[W:.*]] = tessera.param frozen "model.layers.0.mlp.weight" : tensor<4x8xf32>
// CHECK-NEXT: %[[A:.*]] = tessera.param lora_a "model.layers.0.mlp.lora_A" : tensor<8x4xbf16>
// CHECK-NEXT: %[[B:.*]] = tessera.param lora_b "model.layers.0.mlp.lora_B" : tensor<4x2xf16>
// CHECK-NEXT: %[[C:.*]] = tessera.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
// CHECK-NEXT: %[[I:.*]] = tessera.constant dense<{{\[\[}}1, 2], [3, 4]]> : tensor<2x2xi32>
// CHECK-NEXT: %[[M:.*]] = tessera.constant dense<[true, false, true]> : tensor<3xi1>
// CHECK-NEXT: return %[[W]], %[[A]], %[[B]], %[[C]], %[[I]], %[[M]] :
// GENERIC: "tessera.param"() <{kind = #tessera<param_kind frozen>, name = "model.layers.0.mlp.weight"}> : () -> tensor<4x8xf32>
// GENERIC: "tessera.param"() <{kind = #tessera<param_kind lora_a>, name = "model.layers.0.mlp.lora_A"}> : () -> tensor<8x4xbf16>
// GENERIC: "tessera.param"() <{kind = #tessera<param_kind lora_b>, name = "model.layers.0.mlp.lora_B"}> : () -> tensor<4x2xf16>
// GENERIC: "tessera.constant"() <{value = dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>}> : () -> tensor<2xf32>
func.func @leaves() -> (tensor<4x8xf32>, tensor<8x4xbf16>, tensor<4x2xf16>, tensor<2xf32>, tensor<2x2xi32>, tensor<3xi1>) {
  %w = tessera.param frozen "model.layers.0.mlp.weight" : tensor<4x8xf32>
  %a = tessera.param lora_a "model.layers.0.mlp.lora_A" : tensor<8x4xbf16>
  %b = tessera.param lora_b "model.layers.0.mlp.lora_B" : tensor<4x2xf16>
  %c = tessera.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %i = tessera.constant dense<[[1, 2], [3, 4]]> : tensor<2x2xi32>
  %m = tessera.constant dense<[true, false, true]> : tensor<3xi1>
  return %w, %a, %b, %c, %i, %m : tensor<4x8xf32>, tensor<8x4xbf16>, tensor<4x2xf16>, tensor<2xf32>, tensor<2x2xi32>, tensor<3xi1>
}

//===----------------------------------------------------------------------===//
// Elementwise: unary (every fn, storage type), binary (every fn, broadcast,
// promotion), select, cast
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @elementwise(
// CHECK-SAME: %[[X:[^:]*]]: tensor<2x3xf32>, %[[H:[^:]*]]: tensor<3xf16>, %[[BF:[^:]*]]: tensor<2x3xbf16>, %[[CND:[^:]*]]: tensor<2x1xi1>)
// CHECK-NEXT: tessera.unary neg %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary exp %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary log %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary sqrt %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary rsqrt %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary reciprocal %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary sigmoid %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary tanh %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary silu %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary gelu_tanh %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary cos %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary sin %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary relu %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary abs %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary round %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.unary exp %[[X]] : tensor<2x3xf32> -> tensor<2x3xbf16>
// A generic-form input prints in the custom form, with `-> T` left out.
// CHECK-NEXT: tessera.unary sigmoid %[[X]] : tensor<2x3xf32>{{$}}
// CHECK-NEXT: tessera.binary add %[[X]], %[[H]] : (tensor<2x3xf32>, tensor<3xf16>) -> tensor<2x3xf32>
// CHECK-NEXT: tessera.binary sub %[[X]], %[[X]] : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT: tessera.binary mul %[[X]], %[[X]] : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT: tessera.binary div %[[X]], %[[X]] : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT: tessera.binary pow %[[X]], %[[X]] : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT: tessera.binary max %[[X]], %[[X]] : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT: tessera.binary min %[[X]], %[[X]] {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 32>} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT: tessera.binary add %[[H]], %[[BF]] : (tensor<3xf16>, tensor<2x3xbf16>) -> tensor<2x3xf16>
// CHECK-NEXT: tessera.select %[[CND]], %[[X]], %[[H]] : (tensor<2x1xi1>, tensor<2x3xf32>, tensor<3xf16>) -> tensor<2x3xf32>
// CHECK-NEXT: tessera.cast %[[X]] : tensor<2x3xf32> -> tensor<2x3xbf16>
// CHECK-NEXT: tessera.cast %[[X]] : tensor<2x3xf32> -> tensor<2x3xi32>
// CHECK-NEXT: tessera.cast %[[CND]] : tensor<2x1xi1> -> tensor<2x1xf16>
// CHECK-NEXT: return
// GENERIC: "tessera.unary"(%{{.*}}) <{fn = #tessera<unary_fn gelu_tanh>}> : (tensor<2x3xf32>) -> tensor<2x3xf32>
// GENERIC: "tessera.unary"(%{{.*}}) <{fn = #tessera<unary_fn exp>}> : (tensor<2x3xf32>) -> tensor<2x3xbf16>
// GENERIC: "tessera.binary"(%{{.*}}, %{{.*}}) <{fn = #tessera<binary_fn min>}> {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 32>} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
func.func @elementwise(%x: tensor<2x3xf32>, %h: tensor<3xf16>, %bf: tensor<2x3xbf16>, %c: tensor<2x1xi1>) {
  %0 = tessera.unary neg %x : tensor<2x3xf32>
  %1 = tessera.unary exp %x : tensor<2x3xf32>
  %2 = tessera.unary log %x : tensor<2x3xf32>
  %3 = tessera.unary sqrt %x : tensor<2x3xf32>
  %4 = tessera.unary rsqrt %x : tensor<2x3xf32>
  %5 = tessera.unary reciprocal %x : tensor<2x3xf32>
  %6 = tessera.unary sigmoid %x : tensor<2x3xf32>
  %7 = tessera.unary tanh %x : tensor<2x3xf32>
  %8 = tessera.unary silu %x : tensor<2x3xf32>
  %9 = tessera.unary gelu_tanh %x : tensor<2x3xf32>
  %10 = tessera.unary cos %x : tensor<2x3xf32>
  %11 = tessera.unary sin %x : tensor<2x3xf32>
  %12 = tessera.unary relu %x : tensor<2x3xf32>
  %13 = tessera.unary abs %x : tensor<2x3xf32>
  %round = tessera.unary round %x : tensor<2x3xf32>
  %14 = tessera.unary exp %x : tensor<2x3xf32> -> tensor<2x3xbf16>
  %15 = "tessera.unary"(%x) <{fn = #tessera<unary_fn sigmoid>}> : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %20 = tessera.binary add %x, %h : (tensor<2x3xf32>, tensor<3xf16>) -> tensor<2x3xf32>
  %21 = tessera.binary sub %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %22 = tessera.binary mul %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %23 = tessera.binary div %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %24 = tessera.binary pow %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %25 = tessera.binary max %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %26 = tessera.binary min %x, %x {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 32>} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  // The result element type is the storage precision: not checked here.
  %27 = tessera.binary add %h, %bf : (tensor<3xf16>, tensor<2x3xbf16>) -> tensor<2x3xf16>
  %30 = tessera.select %c, %x, %h : (tensor<2x1xi1>, tensor<2x3xf32>, tensor<3xf16>) -> tensor<2x3xf32>
  %40 = tessera.cast %x : tensor<2x3xf32> -> tensor<2x3xbf16>
  %41 = tessera.cast %x : tensor<2x3xf32> -> tensor<2x3xi32>
  %42 = tessera.cast %c : tensor<2x1xi1> -> tensor<2x1xf16>
  return
}

//===----------------------------------------------------------------------===//
// fused_elementwise (tessera-fuse-elementwise): inputs of several shapes and
// element types, a body in storage types
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @fused(
// CHECK: tessera.fused_elementwise ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<2x3xbf16>, tensor<3xf32>, tensor<2x1xi1>) {
// CHECK-NEXT: ^bb0(%[[A:.*]]: tensor<bf16>, %[[B:.*]]: tensor<f32>, %[[C:.*]]: tensor<i1>):
// CHECK-NEXT: %[[S:.*]] = tessera.unary silu %[[A]] : tensor<bf16>
// CHECK-NEXT: %[[M:.*]] = tessera.binary mul %[[S]], %[[B]] : (tensor<bf16>, tensor<f32>) -> tensor<bf16>
// CHECK-NEXT: %[[F:.*]] = tessera.cast %[[C]] : tensor<i1> -> tensor<bf16>
// CHECK-NEXT: %[[R:.*]] = tessera.select %[[C]], %[[M]], %[[F]] : (tensor<i1>, tensor<bf16>, tensor<bf16>) -> tensor<bf16>
// CHECK-NEXT: tessera.yield %[[R]] : tensor<bf16>
// CHECK-NEXT: } {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 64>} : tensor<2x3xbf16>
// GENERIC: "tessera.fused_elementwise"(%{{.*}}, %{{.*}}, %{{.*}}) ({
// GENERIC: "tessera.yield"
func.func @fused(%x: tensor<2x3xbf16>, %y: tensor<3xf32>, %c: tensor<2x1xi1>) {
  %0 = tessera.fused_elementwise ins(%x, %y, %c : tensor<2x3xbf16>, tensor<3xf32>, tensor<2x1xi1>) {
  ^bb0(%a: tensor<bf16>, %b: tensor<f32>, %k: tensor<i1>):
    %s = tessera.unary silu %a : tensor<bf16>
    %m = tessera.binary mul %s, %b : (tensor<bf16>, tensor<f32>) -> tensor<bf16>
    %f = tessera.cast %k : tensor<i1> -> tensor<bf16>
    %r = tessera.select %k, %m, %f : (tensor<i1>, tensor<bf16>, tensor<bf16>) -> tensor<bf16>
    tessera.yield %r : tensor<bf16>
  } {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 64>} : tensor<2x3xbf16>
  return
}

//===----------------------------------------------------------------------===//
// Contractions and reductions: matmul (transposes, every matmul_config kind),
// reduce (every fn, keepdims, reduction_config), softmax, dropout
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @contractions(
// CHECK-SAME: %[[X:[^:]*]]: tensor<2x4x8xf32>, %[[W:[^:]*]]: tensor<16x8xf32>, %[[V:[^:]*]]: tensor<8x16xf16>, %[[Y:[^:]*]]: tensor<2x8x4xf32>)
// Default-valued transposes are left out.
// CHECK-NEXT: tessera.matmul %[[X]], %[[V]] : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
// CHECK-NEXT: tessera.matmul %[[X]], %[[W]] {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
// CHECK-NEXT: tessera.matmul %[[Y]], %[[W]] {transpose_lhs = true, transpose_rhs = true} : (tensor<2x8x4xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
// CHECK-NEXT: tessera.matmul %[[X]], %[[V]] : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
// CHECK-NEXT: tessera.matmul %[[X]], %[[V]] {tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = tiled, tile = [64, 64, 16], thread = [4, 8], split_k = 1>} : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
// CHECK-NEXT: tessera.matmul %[[X]], %[[V]] {tessera.kernel_config = #tessera.matmul_config<variant = "", kind = direct, tile = [8, 8, 8], thread = [2, 2], split_k = 2>} : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
// CHECK-NEXT: tessera.matmul %[[X]], %[[V]] {tessera.kernel_config = #tessera.matmul_config<variant = "tc", kind = coopmat, tile = [128, 128, 32], thread = [32, 8], split_k = 1, mma = [16, 16, 16], subgroups = [2, 2], operands = f16>} : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
// CHECK-NEXT: tessera.matmul %[[X]], %[[V]] {tessera.kernel_config = #tessera.matmul_config<variant = "tc_bf16", kind = coopmat, tile = [64, 32, 16], thread = [64, 4], split_k = 4, mma = [16, 8, 16], subgroups = [4, 1], operands = bf16>} : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
// CHECK-NEXT: tessera.reduce sum %[[X]] {axes = array<i64: 2>} : tensor<2x4x8xf32> -> tensor<2x4xf32>
// CHECK-NEXT: tessera.reduce mean %[[X]] {axes = array<i64: 0, 2>, keepdims = true} : tensor<2x4x8xf32> -> tensor<1x4x1xf32>
// CHECK-NEXT: tessera.reduce max %[[X]] {axes = array<i64: 1>, tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 96>} : tensor<2x4x8xf32> -> tensor<2x8xf32>
// CHECK-NEXT: tessera.reduce sum %[[X]] {axes = array<i64>} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
// CHECK-NEXT: tessera.softmax %[[X]] : tensor<2x4x8xf32>{{$}}
// CHECK-NEXT: tessera.softmax %[[X]] {tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 256>} : tensor<2x4x8xf32> -> tensor<2x4x8xf16>
// CHECK-NEXT: tessera.dropout %[[X]] {rate = 1.000000e-01 : f64, site = 7 : i64} : tensor<2x4x8xf32>{{$}}
// CHECK-NEXT: tessera.dropout %[[X]] {rate = 0.000000e+00 : f64, site = 4294967295 : i64} : tensor<2x4x8xf32> -> tensor<2x4x8xbf16>
// CHECK-NEXT: tessera.act_quant %[[X]] : tensor<2x4x8xf32>{{$}}
// CHECK-NEXT: tessera.act_quant %[[X]] {eps = 1.000000e-03 : f64, tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 64>} : tensor<2x4x8xf32>{{$}}
// CHECK-NEXT: return
// GENERIC: "tessera.matmul"(%{{.*}}, %{{.*}}) <{transpose_lhs = false, transpose_rhs = false}> : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
// GENERIC: "tessera.matmul"(%{{.*}}, %{{.*}}) <{transpose_lhs = false, transpose_rhs = true}> : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
// GENERIC: "tessera.reduce"(%{{.*}}) <{axes = array<i64: 2>, fn = #tessera<reduce_fn sum>, keepdims = false}> : (tensor<2x4x8xf32>) -> tensor<2x4xf32>
// GENERIC: "tessera.dropout"(%{{.*}}) <{rate = 1.000000e-01 : f64, site = 7 : i64}> : (tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
// GENERIC: "tessera.act_quant"(%{{.*}}) <{eps = 1.000000e-05 : f64}> : (tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
func.func @contractions(%x: tensor<2x4x8xf32>, %w: tensor<16x8xf32>, %v: tensor<8x16xf16>, %y: tensor<2x8x4xf32>) {
  %0 = tessera.matmul %x, %v : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
  %1 = tessera.matmul %x, %w {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %2 = tessera.matmul %y, %w {transpose_lhs = true, transpose_rhs = true} : (tensor<2x8x4xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %3 = tessera.matmul %x, %v {transpose_lhs = false, transpose_rhs = false} : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
  %4 = tessera.matmul %x, %v {tessera.kernel_config = #tessera.matmul_config<variant = "general", kind = tiled, tile = [64, 64, 16], thread = [4, 8], split_k = 1>} : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
  %5 = tessera.matmul %x, %v {tessera.kernel_config = #tessera.matmul_config<variant = "", kind = direct, tile = [8, 8, 8], thread = [2, 2], split_k = 2>} : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
  %6 = tessera.matmul %x, %v {tessera.kernel_config = #tessera.matmul_config<variant = "tc", kind = coopmat, tile = [128, 128, 32], thread = [32, 8], split_k = 1, mma = [16, 16, 16], subgroups = [2, 2], operands = f16>} : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
  %7 = tessera.matmul %x, %v {tessera.kernel_config = #tessera.matmul_config<variant = "tc_bf16", kind = coopmat, tile = [64, 32, 16], thread = [64, 4], split_k = 4, mma = [16, 8, 16], subgroups = [4, 1], operands = bf16>} : (tensor<2x4x8xf32>, tensor<8x16xf16>) -> tensor<2x4x16xf32>
  %10 = tessera.reduce sum %x {axes = array<i64: 2>} : tensor<2x4x8xf32> -> tensor<2x4xf32>
  %11 = tessera.reduce mean %x {axes = array<i64: 0, 2>, keepdims = true} : tensor<2x4x8xf32> -> tensor<1x4x1xf32>
  %12 = tessera.reduce max %x {axes = array<i64: 1>, tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 96>} : tensor<2x4x8xf32> -> tensor<2x8xf32>
  %13 = tessera.reduce sum %x {axes = array<i64>} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %20 = tessera.softmax %x : tensor<2x4x8xf32>
  %21 = tessera.softmax %x {tessera.kernel_config = #tessera.reduction_config<strategy = workgroup, workgroup_size = 256>} : tensor<2x4x8xf32> -> tensor<2x4x8xf16>
  %30 = tessera.dropout %x {rate = 0.1 : f64, site = 7 : i64} : tensor<2x4x8xf32>
  %31 = tessera.dropout %x {rate = 0.0 : f64, site = 4294967295 : i64} : tensor<2x4x8xf32> -> tensor<2x4x8xbf16>
  %40 = tessera.act_quant %x : tensor<2x4x8xf32>
  %41 = tessera.act_quant %x {eps = 1.0e-3 : f64, tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 64>} : tensor<2x4x8xf32>
  return
}

//===----------------------------------------------------------------------===//
// bitlinear_matmul (tessera-integer-bitlinear): eps optional, a reduction_config
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @bitlinear_matmul(
// CHECK-SAME: %[[X:[^:]*]]: tensor<2x4x8xf32>, %[[C:[^:]*]]: tensor<16x8xf32>, %[[S:[^:]*]]: tensor<f32>)
// CHECK-NEXT: tessera.bitlinear_matmul %[[X]], %[[C]], %[[S]] : (tensor<2x4x8xf32>, tensor<16x8xf32>, tensor<f32>) -> tensor<2x4x16xf32>
// CHECK-NEXT: tessera.bitlinear_matmul %[[X]], %[[C]], %[[S]] {eps = 1.000000e-03 : f64, tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 64>, tessera.module = "layers.0.mlp.up_proj"} : (tensor<2x4x8xf32>, tensor<16x8xf32>, tensor<f32>) -> tensor<2x4x16xf16>
// CHECK-NEXT: return
// GENERIC: "tessera.bitlinear_matmul"(%{{.*}}, %{{.*}}, %{{.*}}) <{eps = 1.000000e-05 : f64}> : (tensor<2x4x8xf32>, tensor<16x8xf32>, tensor<f32>) -> tensor<2x4x16xf32>
func.func @bitlinear_matmul(%x: tensor<2x4x8xf32>, %c: tensor<16x8xf32>, %s: tensor<f32>) {
  %0 = tessera.bitlinear_matmul %x, %c, %s : (tensor<2x4x8xf32>, tensor<16x8xf32>, tensor<f32>) -> tensor<2x4x16xf32>
  %1 = tessera.bitlinear_matmul %x, %c, %s {eps = 1.0e-3 : f64, tessera.module = "layers.0.mlp.up_proj", tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 64>} : (tensor<2x4x8xf32>, tensor<16x8xf32>, tensor<f32>) -> tensor<2x4x16xf16>
  return
}

//===----------------------------------------------------------------------===//
// fused_matmul (tessera-fuse-matmul-epilogue): alpha and the addend optional,
// a skinny matmul_config
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @fused_matmul(
// CHECK-SAME: %[[X:[^:]*]]: tensor<2x4x8xf32>, %[[W:[^:]*]]: tensor<16x8xf32>, %[[D:[^:]*]]: tensor<2x4x16xbf16>)
// CHECK-NEXT: tessera.fused_matmul %[[X]], %[[W]] {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
// CHECK-NEXT: tessera.fused_matmul %[[X]], %[[W]] {alpha = 2.500000e-01 : f64, transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xbf16>
// CHECK-NEXT: tessera.fused_matmul %[[X]], %[[W]] plus %[[D]] {alpha = 2.000000e+00 : f64, transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>), tensor<2x4x16xbf16> -> tensor<2x4x16xbf16>
// CHECK-NEXT: tessera.fused_matmul %[[X]], %[[W]] plus %[[D]] {tessera.kernel_config = #tessera.matmul_config<variant = "lora_down", kind = skinny, tile = [8, 16, 128], thread = [128, 1], split_k = 1>, transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>), tensor<2x4x16xbf16> -> tensor<2x4x16xf32>
// CHECK-NEXT: return
// GENERIC: "tessera.fused_matmul"(%{{.*}}, %{{.*}}) <{alpha = 1.000000e+00 : f64, transpose_lhs = false, transpose_rhs = true}> : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
// GENERIC: "tessera.fused_matmul"(%{{.*}}, %{{.*}}, %{{.*}}) <{alpha = 2.000000e+00 : f64, transpose_lhs = false, transpose_rhs = true}> : (tensor<2x4x8xf32>, tensor<16x8xf32>, tensor<2x4x16xbf16>) -> tensor<2x4x16xbf16>
func.func @fused_matmul(%x: tensor<2x4x8xf32>, %w: tensor<16x8xf32>, %d: tensor<2x4x16xbf16>) {
  %0 = tessera.fused_matmul %x, %w {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
  %1 = tessera.fused_matmul %x, %w {alpha = 0.25 : f64, transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xbf16>
  %2 = tessera.fused_matmul %x, %w plus %d {alpha = 2.0 : f64, transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>), tensor<2x4x16xbf16> -> tensor<2x4x16xbf16>
  %3 = tessera.fused_matmul %x, %w plus %d {transpose_rhs = true, tessera.kernel_config = #tessera.matmul_config<variant = "lora_down", kind = skinny, tile = [8, 16, 128], thread = [128, 1], split_k = 1>} : (tensor<2x4x8xf32>, tensor<16x8xf32>), tensor<2x4x16xbf16> -> tensor<2x4x16xf32>
  return
}

//===----------------------------------------------------------------------===//
// Data movement: transpose, reshape, broadcast, slice, pad, concat, gather
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @movement(
// CHECK-SAME: %[[X:[^:]*]]: tensor<2x3x4xf32>, %[[I:[^:]*]]: tensor<2x3xi32>, %[[IDS:[^:]*]]: tensor<5xi32>, %[[T:[^:]*]]: tensor<10x4xbf16>)
// CHECK-NEXT: tessera.transpose %[[X]] [2, 0, 1] : tensor<2x3x4xf32> -> tensor<4x2x3xf32>
// CHECK-NEXT: tessera.transpose %[[I]] [1, 0] : tensor<2x3xi32> -> tensor<3x2xi32>
// CHECK-NEXT: tessera.reshape %[[X]] : tensor<2x3x4xf32> -> tensor<6x4xf32>
// CHECK-NEXT: tessera.reshape %[[I]] : tensor<2x3xi32> -> tensor<6xi32>
// CHECK-NEXT: tessera.broadcast %[[X]] : tensor<2x3x4xf32> -> tensor<5x2x3x4xf32>
// CHECK-NEXT: tessera.broadcast %[[IDS]] : tensor<5xi32> -> tensor<2x5xi32>
// CHECK-NEXT: tessera.slice %[[X]] {limits = array<i64: 2, 3, 4>, starts = array<i64: 0, 1, 0>, strides = array<i64: 1, 1, 2>} : tensor<2x3x4xf32> -> tensor<2x2x2xf32>
// CHECK-NEXT: tessera.pad %[[X]] {high = array<i64: 1, 0, 2>, interior = array<i64: 0, 0, 1>, low = array<i64: 0, 1, 0>} : tensor<2x3x4xf32> -> tensor<3x4x9xf32>
// CHECK-NEXT: tessera.concat %[[X]], %[[X]] {axis = 1 : i64} : (tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x6x4xf32>
// CHECK-NEXT: tessera.concat %[[I]] {axis = 0 : i64} : (tensor<2x3xi32>) -> tensor<2x3xi32>
// CHECK-NEXT: tessera.gather %[[X]][%[[IDS]]] {axis = 2 : i64} : (tensor<2x3x4xf32>, tensor<5xi32>) -> tensor<2x3x5xf32>
// CHECK-NEXT: tessera.gather %[[T]][%[[I]]] : (tensor<10x4xbf16>, tensor<2x3xi32>) -> tensor<2x3x4xbf16>
// CHECK-NEXT: tessera.gather %[[T]][%[[I]]] {tile = array<i64: 20, 40>} : (tensor<10x4xbf16>, tensor<2x3xi32>) -> tensor<2x3x4xbf16>
// CHECK-NEXT: return
// GENERIC: "tessera.transpose"(%{{.*}}) <{perm = array<i64: 2, 0, 1>}> : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
// GENERIC: "tessera.concat"(%{{.*}}, %{{.*}}) <{axis = 1 : i64}> : (tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x6x4xf32>
// GENERIC: "tessera.gather"(%{{.*}}, %{{.*}}) <{axis = 0 : i64}> : (tensor<10x4xbf16>, tensor<2x3xi32>) -> tensor<2x3x4xbf16>
func.func @movement(%x: tensor<2x3x4xf32>, %i: tensor<2x3xi32>, %ids: tensor<5xi32>, %t: tensor<10x4xbf16>) {
  %0 = tessera.transpose %x [2, 0, 1] : tensor<2x3x4xf32> -> tensor<4x2x3xf32>
  %1 = tessera.transpose %i [1, 0] : tensor<2x3xi32> -> tensor<3x2xi32>
  %2 = tessera.reshape %x : tensor<2x3x4xf32> -> tensor<6x4xf32>
  %3 = tessera.reshape %i : tensor<2x3xi32> -> tensor<6xi32>
  %4 = tessera.broadcast %x : tensor<2x3x4xf32> -> tensor<5x2x3x4xf32>
  %5 = tessera.broadcast %ids : tensor<5xi32> -> tensor<2x5xi32>
  %6 = tessera.slice %x {starts = array<i64: 0, 1, 0>, limits = array<i64: 2, 3, 4>, strides = array<i64: 1, 1, 2>} : tensor<2x3x4xf32> -> tensor<2x2x2xf32>
  %7 = tessera.pad %x {low = array<i64: 0, 1, 0>, high = array<i64: 1, 0, 2>, interior = array<i64: 0, 0, 1>} : tensor<2x3x4xf32> -> tensor<3x4x9xf32>
  %8 = tessera.concat %x, %x {axis = 1 : i64} : (tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x6x4xf32>
  %9 = tessera.concat %i {axis = 0 : i64} : (tensor<2x3xi32>) -> tensor<2x3xi32>
  %10 = tessera.gather %x[%ids] {axis = 2 : i64} : (tensor<2x3x4xf32>, tensor<5xi32>) -> tensor<2x3x5xf32>
  %11 = tessera.gather %t[%i] : (tensor<10x4xbf16>, tensor<2x3xi32>) -> tensor<2x3x4xbf16>
  %tiled = tessera.gather %t[%i] {tile = array<i64: 20, 40>} : (tensor<10x4xbf16>, tensor<2x3xi32>) -> tensor<2x3x4xbf16>
  return
}

//===----------------------------------------------------------------------===//
// Raised ops: rms_norm, rope, attention (with and without mask), glu (every
// activation), ternary_weight, embedding
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @raised(
// CHECK-SAME: %[[X:[^:]*]]: tensor<1x4x3x8xf32>, %[[W:[^:]*]]: tensor<8xf32>, %[[COS:[^:]*]]: tensor<3x8xf32>, %[[K:[^:]*]]: tensor<1x2x5x8xf32>, %[[MASK:[^:]*]]: tensor<1x1x3x5xf32>, %[[G:[^:]*]]: tensor<2x6xf16>, %[[T:[^:]*]]: tensor<10x4xf32>, %[[IDS:[^:]*]]: tensor<2x3xi32>)
// CHECK-NEXT: tessera.rms_norm %[[X]], %[[W]] {eps = 9.9999999999999995E-7 : f64} : (tensor<1x4x3x8xf32>, tensor<8xf32>) -> tensor<1x4x3x8xf32>
// CHECK-NEXT: tessera.rms_norm %[[X]], %[[W]] {eps = 1.000000e-05 : f64, weight_offset = 1.000000e+00 : f64} : (tensor<1x4x3x8xf32>, tensor<8xf32>) -> tensor<1x4x3x8xf32>
// CHECK-NEXT: tessera.rope %[[X]], %[[COS]], %[[COS]] : (tensor<1x4x3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<1x4x3x8xf32>
// CHECK-NEXT: tessera.rope %[[X]], %[[COS]], %[[COS]] {transposed} : (tensor<1x4x3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<1x4x3x8xbf16>
// CHECK-NEXT: tessera.rope %[[X]], %[[COS]], %[[COS]] {result_permutation = array<i64: 0, 2, 1, 3>} : (tensor<1x4x3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<1x3x4x8xf32>
// CHECK-NEXT: tessera.attention %[[X]], %[[K]], %[[K]] {kv_groups = 2 : i64, scale = 5.000000e-01 : f64} : (tensor<1x4x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>) -> tensor<1x4x3x8xf32>
// CHECK-NEXT: tessera.attention %[[X]], %[[K]], %[[K]] mask %[[MASK]] {kv_groups = 2 : i64, scale = 1.250000e-01 : f64} : (tensor<1x4x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x1x3x5xf32>) -> tensor<1x4x3x8xf32>
// CHECK-NEXT: tessera.glu silu %[[G]], %[[G]] : tensor<2x6xf16>
// CHECK-NEXT: tessera.glu gelu_tanh %[[G]], %[[G]] : tensor<2x6xf16>
// CHECK-NEXT: tessera.glu relu2 %[[G]], %[[G]] : tensor<2x6xf16>
// CHECK-NEXT: tessera.ternary_weight %[[T]] : tensor<10x4xf32>{{$}}
// CHECK-NEXT: tessera.ternary_weight %[[T]] {eps = 1.000000e-03 : f64} : tensor<10x4xf32>
// CHECK-NEXT: tessera.embedding %[[T]][%[[IDS]]] : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
// CHECK-NEXT: tessera.embedding %[[T]][%[[IDS]]] {scale = 2.000000e+00 : f64} : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
// CHECK-NEXT: return
// GENERIC: "tessera.rms_norm"(%{{.*}}, %{{.*}}) <{eps = 9.9999999999999995E-7 : f64, weight_offset = 0.000000e+00 : f64}>
// The optional mask is the only optional operand: no operand segment sizes.
// GENERIC: "tessera.attention"(%{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}) <{kv_groups = 2 : i64, scale = 5.000000e-01 : f64}> : (tensor<1x4x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>) -> tensor<1x4x3x8xf32>
// GENERIC: "tessera.attention"(%{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}) <{kv_groups = 2 : i64, scale = 1.250000e-01 : f64}> : (tensor<1x4x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x1x3x5xf32>) -> tensor<1x4x3x8xf32>
// GENERIC: "tessera.glu"(%{{.*}}, %{{.*}}) <{act = #tessera<glu_activation gelu_tanh>}> : (tensor<2x6xf16>, tensor<2x6xf16>) -> tensor<2x6xf16>
// GENERIC: "tessera.embedding"(%{{.*}}, %{{.*}}) <{scale = 1.000000e+00 : f64}>
func.func @raised(%x: tensor<1x4x3x8xf32>, %w: tensor<8xf32>, %cos: tensor<3x8xf32>, %k: tensor<1x2x5x8xf32>, %mask: tensor<1x1x3x5xf32>, %g: tensor<2x6xf16>, %t: tensor<10x4xf32>, %ids: tensor<2x3xi32>) {
  %0 = tessera.rms_norm %x, %w {eps = 1.0e-6 : f64} : (tensor<1x4x3x8xf32>, tensor<8xf32>) -> tensor<1x4x3x8xf32>
  %1 = tessera.rms_norm %x, %w {eps = 1.0e-5 : f64, weight_offset = 1.0 : f64} : (tensor<1x4x3x8xf32>, tensor<8xf32>) -> tensor<1x4x3x8xf32>
  %2 = tessera.rope %x, %cos, %cos : (tensor<1x4x3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<1x4x3x8xf32>
  %rt = tessera.rope %x, %cos, %cos {transposed} : (tensor<1x4x3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<1x4x3x8xbf16>
  %rp = tessera.rope %x, %cos, %cos {result_permutation = array<i64: 0, 2, 1, 3>} : (tensor<1x4x3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<1x3x4x8xf32>
  %3 = tessera.attention %x, %k, %k {scale = 0.5 : f64, kv_groups = 2 : i64} : (tensor<1x4x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>) -> tensor<1x4x3x8xf32>
  %4 = tessera.attention %x, %k, %k mask %mask {scale = 0.125 : f64, kv_groups = 2 : i64} : (tensor<1x4x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>, tensor<1x1x3x5xf32>) -> tensor<1x4x3x8xf32>
  %5 = tessera.glu silu %g, %g : tensor<2x6xf16>
  %6 = tessera.glu gelu_tanh %g, %g : tensor<2x6xf16>
  %relu2 = tessera.glu relu2 %g, %g : tensor<2x6xf16>
  %tw = tessera.ternary_weight %t : tensor<10x4xf32>
  %tw2 = tessera.ternary_weight %t {eps = 1.0e-3 : f64} : tensor<10x4xf32>
  %7 = tessera.embedding %t[%ids] : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
  %8 = tessera.embedding %t[%ids] {scale = 2.0 : f64} : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
  return
}

//===----------------------------------------------------------------------===//
// Fused attention: flash_attention (out, lse) and its gradient, with and
// without mask, half q/k/v with f32 lse and mask
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @flash(
// CHECK-SAME: %[[Q:[^:]*]]: tensor<1x4x3x8xbf16>, %[[K:[^:]*]]: tensor<1x2x5x8xbf16>, %[[MASK:[^:]*]]: tensor<1x1x3x5xf32>, %[[L:[^:]*]]: tensor<1x4x3xf32>)
// CHECK-NEXT: %[[O:[^,]*]], %[[OL:[^ ]*]] = tessera.flash_attention %[[Q]], %[[K]], %[[K]] {kv_groups = 2 : i64, scale = 5.000000e-01 : f64} : (tensor<1x4x3x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x2x5x8xbf16>) -> (tensor<1x4x3x8xbf16>, tensor<1x4x3xf32>)
// CHECK-NEXT: tessera.flash_attention %[[Q]], %[[K]], %[[K]] mask %[[MASK]] {kv_groups = 2 : i64, scale = 1.250000e-01 : f64} : (tensor<1x4x3x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x1x3x5xf32>) -> (tensor<1x4x3x8xbf16>, tensor<1x4x3xf32>)
// CHECK-NEXT: tessera.flash_attention_grad %[[Q]], %[[K]], %[[K]], %[[O]], %[[OL]], %[[Q]] {kv_groups = 2 : i64, scale = 5.000000e-01 : f64} : (tensor<1x4x3x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x4x3x8xbf16>, tensor<1x4x3xf32>, tensor<1x4x3x8xbf16>) -> (tensor<1x4x3x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x2x5x8xbf16>)
// CHECK-NEXT: tessera.flash_attention_grad %[[Q]], %[[K]], %[[K]], %[[Q]], %[[L]], %[[Q]] mask %[[MASK]] {kv_groups = 2 : i64, scale = 1.250000e-01 : f64} : (tensor<1x4x3x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x4x3x8xbf16>, tensor<1x4x3xf32>, tensor<1x4x3x8xbf16>, tensor<1x1x3x5xf32>) -> (tensor<1x4x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>)
// CHECK-NEXT: return
// GENERIC: "tessera.flash_attention"(%{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}) <{kv_groups = 2 : i64, scale = 5.000000e-01 : f64}>
// GENERIC: "tessera.flash_attention_grad"(%{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}) <{kv_groups = 2 : i64, scale = 1.250000e-01 : f64}>
func.func @flash(%q: tensor<1x4x3x8xbf16>, %k: tensor<1x2x5x8xbf16>, %mask: tensor<1x1x3x5xf32>, %l: tensor<1x4x3xf32>) {
  %o:2 = tessera.flash_attention %q, %k, %k {scale = 0.5 : f64, kv_groups = 2 : i64} : (tensor<1x4x3x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x2x5x8xbf16>) -> (tensor<1x4x3x8xbf16>, tensor<1x4x3xf32>)
  %m:2 = tessera.flash_attention %q, %k, %k mask %mask {scale = 0.125 : f64, kv_groups = 2 : i64} : (tensor<1x4x3x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x1x3x5xf32>) -> (tensor<1x4x3x8xbf16>, tensor<1x4x3xf32>)
  %g:3 = tessera.flash_attention_grad %q, %k, %k, %o#0, %o#1, %q {scale = 0.5 : f64, kv_groups = 2 : i64} : (tensor<1x4x3x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x4x3x8xbf16>, tensor<1x4x3xf32>, tensor<1x4x3x8xbf16>) -> (tensor<1x4x3x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x2x5x8xbf16>)
  %h:3 = tessera.flash_attention_grad %q, %k, %k, %q, %l, %q mask %mask {scale = 0.125 : f64, kv_groups = 2 : i64} : (tensor<1x4x3x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x2x5x8xbf16>, tensor<1x4x3x8xbf16>, tensor<1x4x3xf32>, tensor<1x4x3x8xbf16>, tensor<1x1x3x5xf32>) -> (tensor<1x4x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>)
  return
}

//===----------------------------------------------------------------------===//
// Training: cross_entropy, cross_entropy_grad, adamw_update
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @training(
// CHECK-SAME: %[[L:[^:]*]]: tensor<2x3x10xf32>, %[[T:[^:]*]]: tensor<2x3xi32>, %[[D:[^:]*]]: tensor<f32>, %[[HP:[^:]*]]: tensor<8xf32>, %[[G:[^:]*]]: tensor<4x2xf16>)
// CHECK-NEXT: tessera.cross_entropy %[[L]], %[[T]] : (tensor<2x3x10xf32>, tensor<2x3xi32>) -> tensor<f32>
// CHECK-NEXT: tessera.cross_entropy %[[L]], %[[T]] {ignore_index = 0 : i64, shift = false} : (tensor<2x3x10xf32>, tensor<2x3xi32>) -> tensor<f32>
// CHECK-NEXT: tessera.cross_entropy_grad %[[L]], %[[T]], %[[D]] : (tensor<2x3x10xf32>, tensor<2x3xi32>, tensor<f32>) -> tensor<2x3x10xf32>
// CHECK-NEXT: tessera.cross_entropy_grad %[[L]], %[[T]], %[[D]] {ignore_index = -1 : i64, shift = false} : (tensor<2x3x10xf32>, tensor<2x3xi32>, tensor<f32>) -> tensor<2x3x10xf32>
// CHECK-NEXT: tessera.adamw_update "model.layers.0.mlp.lora_B", %[[G]], %[[HP]] {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>} : tensor<4x2xf16>, tensor<8xf32>
// CHECK-NEXT: return
// GENERIC: "tessera.cross_entropy"(%{{.*}}, %{{.*}}) <{ignore_index = -100 : i64, shift = true}> : (tensor<2x3x10xf32>, tensor<2x3xi32>) -> tensor<f32>
// GENERIC: "tessera.adamw_update"(%{{.*}}, %{{.*}}) <{param = "model.layers.0.mlp.lora_B"}>
func.func @training(%logits: tensor<2x3x10xf32>, %labels: tensor<2x3xi32>, %dloss: tensor<f32>, %hp: tensor<8xf32>, %g: tensor<4x2xf16>) {
  %0 = tessera.cross_entropy %logits, %labels : (tensor<2x3x10xf32>, tensor<2x3xi32>) -> tensor<f32>
  %1 = tessera.cross_entropy %logits, %labels {ignore_index = 0 : i64, shift = false} : (tensor<2x3x10xf32>, tensor<2x3xi32>) -> tensor<f32>
  %2 = tessera.cross_entropy_grad %logits, %labels, %dloss : (tensor<2x3x10xf32>, tensor<2x3xi32>, tensor<f32>) -> tensor<2x3x10xf32>
  %3 = tessera.cross_entropy_grad %logits, %labels, %dloss {ignore_index = -1 : i64, shift = false} : (tensor<2x3x10xf32>, tensor<2x3xi32>, tensor<f32>) -> tensor<2x3x10xf32>
  tessera.adamw_update "model.layers.0.mlp.lora_B", %g, %hp {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 256>} : tensor<4x2xf16>, tensor<8xf32>
  return
}

//===----------------------------------------------------------------------===//
// Execution level: buffer (every kind, optional name/shape/init/alias),
// program, dispatch
//===----------------------------------------------------------------------===//

// CHECK: tessera.buffer input @input_ids : memref<6xi32> {name = "input_ids", shape = array<i64: 2, 3>}
// CHECK-NEXT: tessera.buffer weight @w : memref<32xf32> {name = "model.layers.0.mlp.weight", shape = array<i64: 4, 8>}
// CHECK-NEXT: tessera.buffer constant @const_0 : memref<2xf32> {init = dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>, shape = array<i64: 2>}
// CHECK-NEXT: tessera.buffer lora @a : memref<32xf32>{{$}}
// CHECK-NEXT: tessera.buffer optimizer_state @a.exp_avg : memref<32xf32>{{$}}
// CHECK-NEXT: tessera.buffer gradient @a.grad : memref<32xf32>{{$}}
// CHECK-NEXT: tessera.buffer activation @v0 : memref<24xf32>{{$}}
// CHECK-NEXT: tessera.buffer activation @v0.view : memref<24xf32> {alias = @v0, shape = array<i64: 4, 6>}
// CHECK-NEXT: tessera.buffer output @loss : memref<1xf32> {name = "loss", shape = array<i64>}
// CHECK-NEXT: tessera.buffer hparams @hparams : memref<8xf32>{{$}}
// CHECK-NEXT: gpu.module @matmul_0
// CHECK: gpu.module @kernels
// CHECK: tessera.program @train_step {
// CHECK-NEXT: tessera.dispatch @matmul_0 [@input_ids, @w, @v0] workgroups [3, 13, 1]{{$}}
// CHECK-NEXT: tessera.dispatch @kernels::@sum [@v0, @loss, @hparams] workgroups [1, 1, 1] {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 1>}
// CHECK-NEXT: }
// CHECK-NEXT: tessera.program @eval attributes {note = "empty"} {
// CHECK-NEXT: }
// CHECK-NEXT: }
// GENERIC: "tessera.buffer"() <{kind = #tessera<buffer_kind input>, name = "input_ids", shape = array<i64: 2, 3>, sym_name = "input_ids", type = memref<6xi32>}> : () -> ()
// GENERIC: "tessera.buffer"() <{alias = @v0, kind = #tessera<buffer_kind activation>, shape = array<i64: 4, 6>, sym_name = "v0.view", type = memref<24xf32>}> : () -> ()
// GENERIC: "tessera.program"() <{sym_name = "train_step"}> ({
// GENERIC-NEXT: "tessera.dispatch"() <{buffers = [@input_ids, @w, @v0], kernel = @matmul_0, workgroups = array<i64: 3, 13, 1>}> : () -> ()
// The module's attributes come after its region.
// GENERIC: }) {tessera.kernel_target = {elementwise = #tessera.elementwise_config<workgroup_size = 64>, max_workgroup_count = 65535 : i64, profile = "test", reduce = #tessera.reduction_config<strategy = workgroup, workgroup_size = 128>}} : () -> ()
tessera.buffer input @input_ids : memref<6xi32> {name = "input_ids", shape = array<i64: 2, 3>}
tessera.buffer weight @w : memref<32xf32> {name = "model.layers.0.mlp.weight", shape = array<i64: 4, 8>}
tessera.buffer constant @const_0 : memref<2xf32> {init = dense<[1.0, 2.0]> : tensor<2xf32>, shape = array<i64: 2>}
tessera.buffer lora @a : memref<32xf32>
tessera.buffer optimizer_state @a.exp_avg : memref<32xf32>
tessera.buffer gradient @a.grad : memref<32xf32>
tessera.buffer activation @v0 : memref<24xf32>
tessera.buffer activation @v0.view : memref<24xf32> {alias = @v0, shape = array<i64: 4, 6>}
tessera.buffer output @loss : memref<1xf32> {name = "loss", shape = array<i64>}
tessera.buffer hparams @hparams : memref<8xf32>

// The kernels the dispatches name (a dispatch's kernel must exist).
gpu.module @matmul_0 {
  gpu.func @matmul_0() kernel {
    gpu.return
  }
}
gpu.module @kernels {
  gpu.func @sum() kernel {
    gpu.return
  }
}

tessera.program @train_step {
  tessera.dispatch @matmul_0 [@input_ids, @w, @v0] workgroups [3, 13, 1]
  tessera.dispatch @kernels::@sum [@v0, @loss, @hparams] workgroups [1, 1, 1] {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 1>}
}
tessera.program @eval attributes {note = "empty"} {
}

}
