// tessera-decompose-fused: each raised op becomes the generic ops it stands
// for, with its location and tessera.layer.
// RUN: tessera-opt %s --tessera-decompose-fused | FileCheck %s

// CHECK-LABEL: func.func @rms_norm
// CHECK-SAME: (%[[X:.*]]: tensor<2x3x4xf32>, %[[W:.*]]: tensor<4xf32>)
// CHECK-NEXT: %[[SQ:.*]] = tessera.binary mul %[[X]], %[[X]] {tessera.layer = 3 : i64}
// CHECK-NEXT: %[[M:.*]] = tessera.reduce mean %[[SQ]] {axes = array<i64: 2>, keepdims = true, tessera.layer = 3 : i64} : tensor<2x3x4xf32> -> tensor<2x3x1xf32>
// CHECK-NEXT: %[[E:.*]] = tessera.constant {tessera.layer = 3 : i64} dense<9.99999997E-7> : tensor<f32>
// CHECK-NEXT: %[[A:.*]] = tessera.binary add %[[M]], %[[E]]
// CHECK-NEXT: %[[R:.*]] = tessera.unary rsqrt %[[A]]
// CHECK-NEXT: %[[N:.*]] = tessera.binary mul %[[X]], %[[R]]
// Gemma's unfolded (1 + w).
// CHECK-NEXT: %[[ONE:.*]] = tessera.constant {tessera.layer = 3 : i64} dense<1.000000e+00> : tensor<f32>
// CHECK-NEXT: %[[W1:.*]] = tessera.binary add %[[W]], %[[ONE]] {tessera.layer = 3 : i64} : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
// CHECK-NEXT: %[[Y:.*]] = tessera.binary mul %[[N]], %[[W1]] {tessera.layer = 3 : i64} : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT: return %[[Y]]
func.func @rms_norm(%x: tensor<2x3x4xf32>, %w: tensor<4xf32>) -> tensor<2x3x4xf32> {
  %y = tessera.rms_norm %x, %w {eps = 1.0e-6 : f64, weight_offset = 1.0 : f64, tessera.layer = 3 : i64} : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  return %y : tensor<2x3x4xf32>
}

// CHECK-LABEL: func.func @rope
// CHECK-SAME: (%[[X:.*]]: tensor<1x2x3x4xf32>, %[[C:.*]]: tensor<1x1x3x4xf32>, %[[S:.*]]: tensor<1x1x3x4xf32>)
// CHECK-NEXT: %[[LO:.*]] = tessera.slice %[[X]] {limits = array<i64: 1, 2, 3, 2>, starts = array<i64: 0, 0, 0, 0>, strides = array<i64: 1, 1, 1, 1>}
// CHECK-NEXT: %[[HI:.*]] = tessera.slice %[[X]] {limits = array<i64: 1, 2, 3, 4>, starts = array<i64: 0, 0, 0, 2>, strides = array<i64: 1, 1, 1, 1>}
// CHECK-NEXT: %[[NEG:.*]] = tessera.unary neg %[[HI]]
// CHECK-NEXT: %[[ROT:.*]] = tessera.concat %[[NEG]], %[[LO]] {axis = 3 : i64}
// CHECK-NEXT: %[[XC:.*]] = tessera.binary mul %[[X]], %[[C]]
// CHECK-NEXT: %[[RS:.*]] = tessera.binary mul %[[ROT]], %[[S]]
// CHECK-NEXT: %[[Y:.*]] = tessera.binary add %[[XC]], %[[RS]]
// CHECK-NEXT: return %[[Y]]
func.func @rope(%x: tensor<1x2x3x4xf32>, %c: tensor<1x1x3x4xf32>, %s: tensor<1x1x3x4xf32>) -> tensor<1x2x3x4xf32> {
  %y = tessera.rope %x, %c, %s : (tensor<1x2x3x4xf32>, tensor<1x1x3x4xf32>, tensor<1x1x3x4xf32>) -> tensor<1x2x3x4xf32>
  return %y : tensor<1x2x3x4xf32>
}

// Grouped-query attention: k and v repeated over 2 groups (repeat_kv), scores
// scaled, mask added, softmax, times v.
// CHECK-LABEL: func.func @attention
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x3x8xf32>, %[[K:.*]]: tensor<1x2x3x8xf32>, %[[V:.*]]: tensor<1x2x3x8xf32>, %[[MASK:.*]]: tensor<1x1x3x3xf32>)
// CHECK-NEXT: %[[K1:.*]] = tessera.reshape %[[K]] {tessera.layer = 1 : i64} : tensor<1x2x3x8xf32> -> tensor<1x2x1x3x8xf32>
// CHECK-NEXT: %[[K2:.*]] = tessera.broadcast %[[K1]] {{.*}}: tensor<1x2x1x3x8xf32> -> tensor<1x2x2x3x8xf32>
// CHECK-NEXT: %[[K3:.*]] = tessera.reshape %[[K2]] {{.*}}: tensor<1x2x2x3x8xf32> -> tensor<1x4x3x8xf32>
// CHECK-NEXT: tessera.reshape %[[V]]
// CHECK-NEXT: tessera.broadcast
// CHECK-NEXT: %[[V3:.*]] = tessera.reshape
// CHECK-NEXT: %[[S:.*]] = tessera.matmul %[[Q]], %[[K3]] {tessera.layer = 1 : i64, transpose_rhs = true} : (tensor<1x4x3x8xf32>, tensor<1x4x3x8xf32>) -> tensor<1x4x3x3xf32>
// CHECK-NEXT: %[[C:.*]] = tessera.constant {tessera.layer = 1 : i64} dense<0.353553385> : tensor<f32>
// CHECK-NEXT: %[[SS:.*]] = tessera.binary mul %[[S]], %[[C]]
// CHECK-NEXT: %[[SM:.*]] = tessera.binary add %[[SS]], %[[MASK]]
// CHECK-NEXT: %[[P:.*]] = tessera.softmax %[[SM]]
// CHECK-NEXT: %[[O:.*]] = tessera.matmul %[[P]], %[[V3]] {tessera.layer = 1 : i64} : (tensor<1x4x3x3xf32>, tensor<1x4x3x8xf32>) -> tensor<1x4x3x8xf32>
// CHECK-NEXT: return %[[O]]
func.func @attention(%q: tensor<1x4x3x8xf32>, %k: tensor<1x2x3x8xf32>, %v: tensor<1x2x3x8xf32>, %mask: tensor<1x1x3x3xf32>) -> tensor<1x4x3x8xf32> {
  %o = tessera.attention %q, %k, %v mask %mask {scale = 0.35355339059327373 : f64, kv_groups = 2 : i64, tessera.layer = 1 : i64} : (tensor<1x4x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x1x3x3xf32>) -> tensor<1x4x3x8xf32>
  return %o : tensor<1x4x3x8xf32>
}

// Without mask and groups: no repeat, no add.
// CHECK-LABEL: func.func @attention_mha
// CHECK-NEXT: tessera.matmul %arg0, %arg1 {transpose_rhs = true}
// CHECK-NEXT: tessera.constant
// CHECK-NEXT: tessera.binary mul
// CHECK-NEXT: tessera.softmax
// CHECK-NEXT: tessera.matmul
// CHECK-NEXT: return
func.func @attention_mha(%q: tensor<1x2x3x8xf32>, %k: tensor<1x2x5x8xf32>, %v: tensor<1x2x5x8xf32>) -> tensor<1x2x3x8xf32> {
  %o = tessera.attention %q, %k, %v {scale = 0.5 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x5x8xf32>, tensor<1x2x5x8xf32>) -> tensor<1x2x3x8xf32>
  return %o : tensor<1x2x3x8xf32>
}

// CHECK-LABEL: func.func @glu
// CHECK-NEXT: %[[A:.*]] = tessera.unary gelu_tanh %arg0
// CHECK-NEXT: %[[Y:.*]] = tessera.binary mul %[[A]], %arg1
// CHECK-NEXT: %[[B:.*]] = tessera.unary silu %arg0
// CHECK-NEXT: tessera.binary mul %[[B]], %[[Y]]
func.func @glu(%g: tensor<2x6xf32>, %u: tensor<2x6xf32>) -> tensor<2x6xf32> {
  %y = tessera.glu gelu_tanh %g, %u : tensor<2x6xf32>
  %z = tessera.glu silu %g, %y : tensor<2x6xf32>
  return %z : tensor<2x6xf32>
}

// CHECK-LABEL: func.func @embedding
// CHECK-NEXT: %[[G:.*]] = tessera.gather %arg0[%arg1] : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
// CHECK-NEXT: %[[S:.*]] = tessera.constant dense<2.000000e+00> : tensor<f32>
// CHECK-NEXT: %[[Y:.*]] = tessera.binary mul %[[G]], %[[S]]
// CHECK-NEXT: %[[G2:.*]] = tessera.gather %arg0[%arg1]
// CHECK-NEXT: tessera.binary add %[[Y]], %[[G2]]
func.func @embedding(%t: tensor<10x4xf32>, %ids: tensor<2x3xi32>) -> tensor<2x3x4xf32> {
  %e = tessera.embedding %t[%ids] {scale = 2.0 : f64} : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
  %f = tessera.embedding %t[%ids] : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
  %s = tessera.binary add %e, %f : (tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  return %s : tensor<2x3x4xf32>
}

// relu2: relu(g) * relu(g) * u.
// CHECK-LABEL: func.func @glu_relu2
// CHECK-NEXT: %[[R:.*]] = tessera.unary relu %arg0
// CHECK-NEXT: %[[S:.*]] = tessera.binary mul %[[R]], %[[R]]
// CHECK-NEXT: tessera.binary mul %[[S]], %arg1
func.func @glu_relu2(%g: tensor<2x6xf32>, %u: tensor<2x6xf32>) -> tensor<2x6xf32> {
  %y = tessera.glu relu2 %g, %u : tensor<2x6xf32>
  return %y : tensor<2x6xf32>
}

// A ternary weight of a frozen param: its products read the derived codes
// (the same initializer) and multiply by the derived scale; the f32 param is
// gone. Of anything else: the generic chain.
// CHECK-LABEL: func.func @ternary_weight
// CHECK-NEXT: %[[C:.*]] = tessera.param frozen "w" {tessera.layer = 1 : i64, tessera.ternary = "codes", tessera.ternary_eps = 1.000000e-05 : f64} : tensor<4x8xf32>
// CHECK-NEXT: %[[P:.*]] = tessera.matmul %arg0, %[[C]] {tessera.layer = 1 : i64, tessera.module = "layers.1.mlp.up_proj", transpose_rhs = true}
// CHECK-NEXT: %[[S:.*]] = tessera.param frozen "w" {tessera.layer = 1 : i64, tessera.ternary = "scale", tessera.ternary_eps = 1.000000e-05 : f64} : tensor<f32>
// CHECK-NEXT: %[[Y:.*]] = tessera.binary mul %[[P]], %[[S]] {tessera.layer = 1 : i64}
// CHECK-NEXT: %[[A:.*]] = tessera.unary abs %arg1
// CHECK-NEXT: %[[M:.*]] = tessera.reduce mean %[[A]] {axes = array<i64: 0, 1>, keepdims = true}
// CHECK: tessera.unary round
// CHECK-NOT: tessera.param frozen "w" : tensor<4x8xf32>
// CHECK: return %[[Y]]
func.func @ternary_weight(%x: tensor<2x3x8xf32>, %v: tensor<4x8xf32>) -> (tensor<2x3x4xf32>, tensor<4x8xf32>) {
  %w = tessera.param frozen "w" : tensor<4x8xf32>
  %t = tessera.ternary_weight %w : tensor<4x8xf32>
  %y = tessera.matmul %x, %t {tessera.layer = 1 : i64, tessera.module = "layers.1.mlp.up_proj", transpose_rhs = true} : (tensor<2x3x8xf32>, tensor<4x8xf32>) -> tensor<2x3x4xf32>
  %tv = tessera.ternary_weight %v : tensor<4x8xf32>
  return %y, %tv : tensor<2x3x4xf32>, tensor<4x8xf32>
}
