// tessera-fuse-elementwise: what fuses (a chain, a tree with a shared
// operand, broadcasts folded into the inputs, half storage types kept on the
// body's values, bookkeeping attributes dropped) and what does not (a value
// used outside the tree before its root, another shape, a reduction, a
// matmul, a single op; an intermediate read after the root is a result).
// RUN: tessera-opt %s --tessera-fuse-elementwise | FileCheck %s
// The kernels: one per fused op, spirv-valid (the numerics are in
// test/unit/lowering/KernelNumericsFusedTest.cpp).
// RUN: tessera-opt %s --tessera-fuse-elementwise --tessera-select-kernel-configs --tessera-lower-to-kernels | FileCheck %s --check-prefix=KERNELS

// SwiGLU, the residual add and what follows of one shape: x * x used twice
// (a tree with a shared leaf), a broadcast [8] -> [2,4,8] folded (the input
// is the [8] weight itself, its broadcast gone). The half intermediates keep
// their storage types; the root's bookkeeping attributes stay on the op.
// CHECK-LABEL: func.func @loss(
// CHECK: %[[G:.*]] = tessera.param frozen "g"
// CHECK: %[[U:.*]] = tessera.param frozen "u"
// CHECK: %[[R:.*]] = tessera.param frozen "r"
// CHECK: %[[W:.*]] = tessera.param frozen "w" : tensor<8xf32>
// CHECK-NOT: tessera.broadcast
// CHECK: %[[T:.*]] = tessera.fused_elementwise ins(%[[G]], %[[U]], %[[R]], %[[W]] : tensor<2x4x8xbf16>, tensor<2x4x8xbf16>, tensor<2x4x8xf32>, tensor<8xf32>) {
// CHECK-NEXT: ^bb0(%[[A0:.*]]: tensor<bf16>, %[[A1:.*]]: tensor<bf16>, %[[A2:.*]]: tensor<f32>, %[[A3:.*]]: tensor<f32>):
// CHECK-NEXT: %[[S:.*]] = tessera.unary silu %[[A0]] : tensor<bf16>
// CHECK-NEXT: %[[M:.*]] = tessera.binary mul %[[S]], %[[A1]] : (tensor<bf16>, tensor<bf16>) -> tensor<bf16>
// CHECK-NEXT: %[[H:.*]] = tessera.binary add %[[M]], %[[A2]] : (tensor<bf16>, tensor<f32>) -> tensor<f32>
// CHECK-NEXT: %[[SQ:.*]] = tessera.binary mul %[[H]], %[[H]]
// CHECK-NEXT: %[[SW:.*]] = tessera.binary mul %[[SQ]], %[[A3]]
// CHECK-NEXT: %[[E:.*]] = tessera.unary exp %[[SQ]]
// CHECK-NEXT: %[[D:.*]] = tessera.binary sub %[[SW]], %[[E]]
// CHECK-NEXT: tessera.yield %[[D]] : tensor<f32>
// CHECK-NEXT: } {tessera.layer = 1 : i64} : tensor<2x4x8xf32>
//
// A reduction ends a tree: the mean is an input, and the [2,4,1] ops after
// it are a tree of their own shape.
// CHECK: %[[MEAN:.*]] = tessera.reduce mean %[[T]]
// CHECK: %[[EPS:.*]] = tessera.fused_elementwise ins(%[[MEAN]], %{{.*}} : tensor<2x4x1xf32>, tensor<f32>)
// CHECK: } : tensor<2x4x1xf32>
//
// A root may have several users (the matmul and the neg): its value is
// stored, and its users' tree reads it.
// CHECK: %[[KEEP:.*]] = tessera.fused_elementwise ins(%[[T]], %[[EPS]] : tensor<2x4x8xf32>, tensor<2x4x1xf32>)
// CHECK-NEXT: ^bb0
// CHECK-NEXT: tessera.binary mul
// CHECK-NEXT: tessera.unary tanh
// CHECK-NEXT: tessera.yield
// CHECK: %[[Y:.*]] = tessera.matmul %[[KEEP]]
// CHECK: tessera.fused_elementwise ins(%[[KEEP]], %[[Y]] :
// CHECK-NEXT: ^bb0
// CHECK-NEXT: tessera.unary neg
// CHECK-NEXT: tessera.binary add
// CHECK-NEXT: tessera.yield
//
// A single op is left alone.
// CHECK: tessera.unary sigmoid
// CHECK-NOT: tessera.fused_elementwise
// CHECK: return

// An intermediate read again after the root (silu, by the last mul) is one
// more result of the fused op; the mul after the matmul stays alone.
// CHECK-LABEL: func.func @forward(
// CHECK: %[[F:.*]]:2 = tessera.fused_elementwise ins(
// CHECK-NEXT: ^bb0
// CHECK-NEXT: %[[S:.*]] = tessera.unary silu
// CHECK-NEXT: %[[M:.*]] = tessera.binary mul %[[S]]
// CHECK-NEXT: tessera.yield %[[M]], %[[S]] : tensor<f32>, tensor<f32>
// CHECK-NEXT: } : tensor<2x4x8xf32>, tensor<2x4x8xf32>
// CHECK: %[[Y:.*]] = tessera.matmul %[[F]]#0
// CHECK: tessera.binary mul %[[F]]#1, %[[Y]]

// RMSNorm's backward: dy * w feeds both the reduction's product and the dx
// chain, whose member (dy * w) * r sits before that product. The dx group is
// grown first (its root is last); the use of dy * w by its member counts at
// its root, so dy * w still joins the product: two fused ops, no lone binary.
// CHECK-LABEL: func.func @interleaved(
// CHECK: %[[P:.*]]:2 = tessera.fused_elementwise ins(%arg0, %arg1, %arg2 :
// CHECK-NEXT: ^bb0
// CHECK-NEXT: %[[A:.*]] = tessera.binary mul
// CHECK-NEXT: %[[B:.*]] = tessera.binary mul %[[A]]
// CHECK-NEXT: tessera.yield %[[B]], %[[A]]
// CHECK: %[[S:.*]] = tessera.reduce sum %[[P]]#0
// CHECK: %[[S3:.*]] = tessera.reshape %[[S]]
// CHECK: %[[DX:.*]] = tessera.fused_elementwise ins(%[[P]]#1, %arg3, %arg2, %[[S3]] :
// CHECK: tessera.binary sub
// CHECK-NEXT: tessera.yield
// CHECK-NEXT: } : tensor<2x4x8xf32>
// CHECK-NEXT: return %[[S]], %[[DX]]

// One kernel per fused op; no binary or broadcast kernel is left.
// KERNELS-COUNT-4: tessera.dispatch @fused_elementwise_
// KERNELS-NOT: tessera.dispatch @binary_
// KERNELS-NOT: tessera.dispatch @broadcast_

module attributes {tessera.lora = {rank = 2 : i64, alpha = 4.0 : f64}} {
  func.func @loss(%ids: tensor<2x4xi32>, %labels: tensor<2x4xi32>) -> tensor<f32> {
    %g = tessera.param frozen "g" : tensor<2x4x8xbf16>
    %u = tessera.param frozen "u" : tensor<2x4x8xbf16>
    %r = tessera.param frozen "r" : tensor<2x4x8xf32>
    %s = tessera.unary silu %g {tessera.layer = 0 : i64} : tensor<2x4x8xbf16>
    %m = tessera.binary mul %s, %u {tessera.layer = 0 : i64} : (tensor<2x4x8xbf16>, tensor<2x4x8xbf16>) -> tensor<2x4x8xbf16>
    %h = tessera.binary add %m, %r {tessera.layer = 0 : i64} : (tensor<2x4x8xbf16>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>

    %w = tessera.param frozen "w" : tensor<8xf32>
    %wb = tessera.broadcast %w : tensor<8xf32> -> tensor<2x4x8xf32>
    %sq = tessera.binary mul %h, %h : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %sw = tessera.binary mul %sq, %wb : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %e = tessera.unary exp %sq : tensor<2x4x8xf32>
    %t = tessera.binary sub %sw, %e {tessera.layer = 1 : i64} : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>

    %mean = tessera.reduce mean %t {axes = array<i64: 2>, keepdims = true} : tensor<2x4x8xf32> -> tensor<2x4x1xf32>
    %eps = tessera.constant dense<1.0e-5> : tensor<f32>
    %me = tessera.binary add %mean, %eps : (tensor<2x4x1xf32>, tensor<f32>) -> tensor<2x4x1xf32>
    %rs = tessera.unary rsqrt %me : tensor<2x4x1xf32>
    %n = tessera.binary mul %t, %rs : (tensor<2x4x8xf32>, tensor<2x4x1xf32>) -> tensor<2x4x8xf32>

    %keep = tessera.unary tanh %n : tensor<2x4x8xf32>
    %wm = tessera.param frozen "wm" : tensor<8x8xf32>
    %y = tessera.matmul %keep, %wm {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
    %ng = tessera.unary neg %keep : tensor<2x4x8xf32>
    %z = tessera.binary add %ng, %y : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>

    %y2 = tessera.matmul %z, %wm {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
    %sg = tessera.unary sigmoid %y2 : tensor<2x4x8xf32>
    %emb = tessera.param frozen "lm_head.weight" : tensor<16x8xf32>
    %logits = tessera.matmul %sg, %emb {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
    %loss = tessera.cross_entropy %logits, %labels : (tensor<2x4x16xf32>, tensor<2x4xi32>) -> tensor<f32>
    return %loss : tensor<f32>
  }
  func.func @forward(%x: tensor<2x4x8xf32>, %w: tensor<2x4x8xf32>) -> tensor<2x4x8xf32> {
    %s = tessera.unary silu %x : tensor<2x4x8xf32>
    %m = tessera.binary mul %s, %w : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %wm = tessera.param frozen "wm" : tensor<8x8xf32>
    %y = tessera.matmul %m, %wm {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
    %late = tessera.binary mul %s, %y : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    return %late : tensor<2x4x8xf32>
  }
  func.func @interleaved(%dy: tensor<2x4x8xf32>, %w: tensor<8xf32>, %x: tensor<2x4x8xf32>, %r: tensor<2x4x1xf32>) -> (tensor<2x4xf32>, tensor<2x4x8xf32>) {
    %a = tessera.binary mul %dy, %w : (tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<2x4x8xf32>
    %u = tessera.binary mul %a, %r : (tensor<2x4x8xf32>, tensor<2x4x1xf32>) -> tensor<2x4x8xf32>
    %b = tessera.binary mul %a, %x : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %s = tessera.reduce sum %b {axes = array<i64: 2>} : tensor<2x4x8xf32> -> tensor<2x4xf32>
    %s3 = tessera.reshape %s : tensor<2x4xf32> -> tensor<2x4x1xf32>
    %t = tessera.binary mul %x, %s3 : (tensor<2x4x8xf32>, tensor<2x4x1xf32>) -> tensor<2x4x8xf32>
    %dx = tessera.binary sub %u, %t : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    return %s, %dx : tensor<2x4xf32>, tensor<2x4x8xf32>
  }
}
