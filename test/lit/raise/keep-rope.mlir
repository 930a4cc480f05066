// tessera-decompose-fused{keep-rope=true} (the training pipeline's): RoPE
// stays one tessera.rope for autodiff and the lowering, while the other
// raised ops still expand.
// RUN: tessera-opt %s --tessera-decompose-fused=keep-rope=true | FileCheck %s
// RUN: tessera-opt %s --tessera-decompose-fused | FileCheck %s --check-prefix=EXPAND

// CHECK-LABEL: func.func @rope_and_norm
// CHECK: tessera.rope %{{.*}}, %{{.*}}, %{{.*}} {tessera.layer = 2 : i64}
// CHECK-NOT: tessera.rms_norm
// CHECK-NOT: tessera.concat
// EXPAND-LABEL: func.func @rope_and_norm
// EXPAND-NOT: tessera.rope
// EXPAND: tessera.concat
func.func @rope_and_norm(%x: tensor<1x2x3x4xf32>, %w: tensor<4xf32>, %c: tensor<3x4xf32>) -> tensor<1x2x3x4xf32> {
  %n = tessera.rms_norm %x, %w {eps = 1.0e-6 : f64} : (tensor<1x2x3x4xf32>, tensor<4xf32>) -> tensor<1x2x3x4xf32>
  %y = tessera.rope %n, %c, %c {tessera.layer = 2 : i64} : (tensor<1x2x3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<1x2x3x4xf32>
  return %y : tensor<1x2x3x4xf32>
}
