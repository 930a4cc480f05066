// tessera-raise on BitNet b1.58's BitLinear as the dynamo export spells it
// (transformers' AutoBitLinear, online mode): the weight's absmean ternary
// fake quantisation becomes tessera.ternary_weight, the activation's per-row
// absmax int8 one tessera.act_quant; any other form stays generic ops.
// (tessera-raise reads @forward.)
// RUN: tessera-opt %s --split-input-file --tessera-raise | FileCheck %s

// The product is the graph's output head here; it counts as a BitLinear.
// CHECK: bit_linear_layers = 1 : i64, {{.*}}generic_ops = []
// CHECK-LABEL: func.func @forward
// CHECK-SAME: (%[[X:.*]]: tensor<2x3x8xf32>)
// CHECK: %[[W:.*]] = tessera.param frozen "w" : tensor<4x8xf32>
// CHECK-NEXT: %[[T:.*]] = tessera.ternary_weight %[[W]] {eps = 9.99999974{{[0-9]*}}E-6 : f64} : tensor<4x8xf32>
// CHECK-NEXT: %[[Q:.*]] = tessera.act_quant %[[X]] {eps = 9.99999974{{[0-9]*}}E-6 : f64} : tensor<2x3x8xf32>
// CHECK-NEXT: %[[Y:.*]] = tessera.matmul %[[Q]], %[[T]] {tessera.module = "lm_head", transpose_rhs = true}
// CHECK-NEXT: return %[[Y]]
func.func @forward(%x: tensor<2x3x8xf32>) -> tensor<2x3x4xf32> {
  %w = tessera.param frozen "w" : tensor<4x8xf32>
  %eps = tessera.constant dense<1.0e-5> : tensor<f32>
  %m1 = tessera.constant dense<-1.0> : tensor<f32>
  %p1 = tessera.constant dense<1.0> : tensor<f32>
  %c127 = tessera.constant dense<127.0> : tensor<f32>
  %m128 = tessera.constant dense<-128.0> : tensor<f32>
  // weight: s = 1 / max(mean|w|, eps); clamp(round(w s), -1, 1) / s
  %aw = tessera.unary abs %w : tensor<4x8xf32>
  %mw = tessera.reduce mean %aw {axes = array<i64: 0, 1>, keepdims = true} : tensor<4x8xf32> -> tensor<1x1xf32>
  %sq = tessera.reshape %mw : tensor<1x1xf32> -> tensor<f32>
  %cw = tessera.binary max %sq, %eps : (tensor<f32>, tensor<f32>) -> tensor<f32>
  %s = tessera.unary reciprocal %cw : tensor<f32>
  %ws = tessera.binary mul %w, %s : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %rw = tessera.unary round %ws : tensor<4x8xf32>
  %lw = tessera.binary max %rw, %m1 : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %hw = tessera.binary min %lw, %p1 : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %wq = tessera.binary div %hw, %s : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  // activation: a = (1 / max(max|x|, eps)) * 127; clamp(round(x a), -128, 127) / a
  %ax = tessera.unary abs %x : tensor<2x3x8xf32>
  %mx = tessera.reduce max %ax {axes = array<i64: 2>, keepdims = true} : tensor<2x3x8xf32> -> tensor<2x3x1xf32>
  %cx = tessera.binary max %mx, %eps : (tensor<2x3x1xf32>, tensor<f32>) -> tensor<2x3x1xf32>
  %ix = tessera.unary reciprocal %cx : tensor<2x3x1xf32>
  %a = tessera.binary mul %ix, %c127 : (tensor<2x3x1xf32>, tensor<f32>) -> tensor<2x3x1xf32>
  %xa = tessera.binary mul %x, %a : (tensor<2x3x8xf32>, tensor<2x3x1xf32>) -> tensor<2x3x8xf32>
  %rx = tessera.unary round %xa : tensor<2x3x8xf32>
  %lx = tessera.binary max %rx, %m128 : (tensor<2x3x8xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  %hx = tessera.binary min %lx, %c127 : (tensor<2x3x8xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  %xq = tessera.binary div %hx, %a : (tensor<2x3x8xf32>, tensor<2x3x1xf32>) -> tensor<2x3x8xf32>
  %y = tessera.matmul %xq, %wq {transpose_rhs = true} : (tensor<2x3x8xf32>, tensor<4x8xf32>) -> tensor<2x3x4xf32>
  return %y : tensor<2x3x4xf32>
}

// -----

// Near misses stay generic: an activation clamp to [-128, 100], a row
// maximum over another axis, a weight clamp to [-2, 2], and a ternarised
// value that is not a frozen param.
// CHECK-NOT: bit_linear_layers
// CHECK-LABEL: func.func @forward
// CHECK-NOT: tessera.act_quant
// CHECK-NOT: tessera.ternary_weight
// CHECK: return
func.func @forward(%x: tensor<2x3x8xf32>, %v: tensor<4x8xf32>) -> (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>) {
  %w = tessera.param frozen "w" : tensor<4x8xf32>
  %eps = tessera.constant dense<1.0e-5> : tensor<f32>
  %c127 = tessera.constant dense<127.0> : tensor<f32>
  %c100 = tessera.constant dense<100.0> : tensor<f32>
  %m128 = tessera.constant dense<-128.0> : tensor<f32>
  %m2 = tessera.constant dense<-2.0> : tensor<f32>
  %p2 = tessera.constant dense<2.0> : tensor<f32>
  %m1 = tessera.constant dense<-1.0> : tensor<f32>
  %p1 = tessera.constant dense<1.0> : tensor<f32>
  %ax = tessera.unary abs %x : tensor<2x3x8xf32>
  %mx = tessera.reduce max %ax {axes = array<i64: 2>, keepdims = true} : tensor<2x3x8xf32> -> tensor<2x3x1xf32>
  %cx = tessera.binary max %mx, %eps : (tensor<2x3x1xf32>, tensor<f32>) -> tensor<2x3x1xf32>
  %ix = tessera.unary reciprocal %cx : tensor<2x3x1xf32>
  %a = tessera.binary mul %ix, %c127 : (tensor<2x3x1xf32>, tensor<f32>) -> tensor<2x3x1xf32>
  %xa = tessera.binary mul %x, %a : (tensor<2x3x8xf32>, tensor<2x3x1xf32>) -> tensor<2x3x8xf32>
  %rx = tessera.unary round %xa : tensor<2x3x8xf32>
  %lx = tessera.binary max %rx, %m128 : (tensor<2x3x8xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  %hx = tessera.binary min %lx, %c100 : (tensor<2x3x8xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  %q1 = tessera.binary div %hx, %a : (tensor<2x3x8xf32>, tensor<2x3x1xf32>) -> tensor<2x3x8xf32>
  // max over axis 1
  %my = tessera.reduce max %ax {axes = array<i64: 1>, keepdims = true} : tensor<2x3x8xf32> -> tensor<2x1x8xf32>
  %cy = tessera.binary max %my, %eps : (tensor<2x1x8xf32>, tensor<f32>) -> tensor<2x1x8xf32>
  %iy = tessera.unary reciprocal %cy : tensor<2x1x8xf32>
  %b = tessera.binary mul %iy, %c127 : (tensor<2x1x8xf32>, tensor<f32>) -> tensor<2x1x8xf32>
  %xb = tessera.binary mul %x, %b : (tensor<2x3x8xf32>, tensor<2x1x8xf32>) -> tensor<2x3x8xf32>
  %ry = tessera.unary round %xb : tensor<2x3x8xf32>
  %ly = tessera.binary max %ry, %m128 : (tensor<2x3x8xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  %hy = tessera.binary min %ly, %c127 : (tensor<2x3x8xf32>, tensor<f32>) -> tensor<2x3x8xf32>
  %q2 = tessera.binary div %hy, %b : (tensor<2x3x8xf32>, tensor<2x1x8xf32>) -> tensor<2x3x8xf32>
  // weight clamp [-2, 2]
  %aw = tessera.unary abs %w : tensor<4x8xf32>
  %mw = tessera.reduce mean %aw {axes = array<i64: 0, 1>, keepdims = true} : tensor<4x8xf32> -> tensor<1x1xf32>
  %cw = tessera.binary max %mw, %eps : (tensor<1x1xf32>, tensor<f32>) -> tensor<1x1xf32>
  %s = tessera.unary reciprocal %cw : tensor<1x1xf32>
  %ws = tessera.binary mul %w, %s : (tensor<4x8xf32>, tensor<1x1xf32>) -> tensor<4x8xf32>
  %rw = tessera.unary round %ws : tensor<4x8xf32>
  %lw = tessera.binary max %rw, %m2 : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %hw = tessera.binary min %lw, %p2 : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %w2 = tessera.binary div %hw, %s : (tensor<4x8xf32>, tensor<1x1xf32>) -> tensor<4x8xf32>
  // the right formula on an argument, not a frozen param
  %av = tessera.unary abs %v : tensor<4x8xf32>
  %mv = tessera.reduce mean %av {axes = array<i64: 0, 1>, keepdims = true} : tensor<4x8xf32> -> tensor<1x1xf32>
  %cv = tessera.binary max %mv, %eps : (tensor<1x1xf32>, tensor<f32>) -> tensor<1x1xf32>
  %sv = tessera.unary reciprocal %cv : tensor<1x1xf32>
  %vs = tessera.binary mul %v, %sv : (tensor<4x8xf32>, tensor<1x1xf32>) -> tensor<4x8xf32>
  %rv = tessera.unary round %vs : tensor<4x8xf32>
  %lv = tessera.binary max %rv, %m1 : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %hv = tessera.binary min %lv, %p1 : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %v2 = tessera.binary div %hv, %sv : (tensor<4x8xf32>, tensor<1x1xf32>) -> tensor<4x8xf32>
  return %q1, %q2, %w2, %v2 : tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>
}
