// tessera-assign-quant on BitNet's ternary codes (tessera.ternary = "codes",
// made by tessera-decompose-fused): TQ2_0 without --base-dtype (blocks of
// scale 1 hold -1, 0, 1 exactly); rows that are not whole blocks stay in the
// precision, named; an override keeps them; the scale is never quantised.
// RUN: tessera-opt %s --tessera-assign-quant 2>&1 | FileCheck %s
// RUN: tessera-opt %s "--tessera-assign-quant=overrides=up_proj=fp32" 2>&1 | FileCheck %s --check-prefix=OVR

// CHECK: remark: layers.0.mlp.down_proj ('d') stays in fp32, not tq2_0: its rows of 64 input features are not whole blocks of 256
// CHECK-LABEL: func.func @loss
// CHECK: tessera.param frozen "u" {tessera.quant = "tq2_0", tessera.ternary = "codes", tessera.ternary_eps = 1.000000e-05 : f64} : tensor<64x256xf32>
// CHECK: tessera.param frozen "u" {tessera.ternary = "scale", tessera.ternary_eps = 1.000000e-05 : f64} : tensor<f32>
// CHECK: tessera.param frozen "d" {tessera.ternary = "codes", tessera.ternary_eps = 1.000000e-05 : f64} : tensor<256x64xf32>
// OVR-NOT: tessera.quant
func.func @loss(%x: tensor<2x3x256xf32>) -> tensor<2x3x256xf32> {
  %u = tessera.param frozen "u" {tessera.ternary = "codes", tessera.ternary_eps = 1.0e-5 : f64} : tensor<64x256xf32>
  %h = tessera.matmul %x, %u {tessera.module = "layers.0.mlp.up_proj", transpose_rhs = true} : (tensor<2x3x256xf32>, tensor<64x256xf32>) -> tensor<2x3x64xf32>
  %us = tessera.param frozen "u" {tessera.ternary = "scale", tessera.ternary_eps = 1.0e-5 : f64} : tensor<f32>
  %hs = tessera.binary mul %h, %us : (tensor<2x3x64xf32>, tensor<f32>) -> tensor<2x3x64xf32>
  %d = tessera.param frozen "d" {tessera.ternary = "codes", tessera.ternary_eps = 1.0e-5 : f64} : tensor<256x64xf32>
  %y = tessera.matmul %hs, %d {tessera.module = "layers.0.mlp.down_proj", transpose_rhs = true} : (tensor<2x3x64xf32>, tensor<256x64xf32>) -> tensor<2x3x256xf32>
  return %y : tensor<2x3x256xf32>
}
