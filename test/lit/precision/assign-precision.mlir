// tessera-assign-precision: where each value of a small decoder graph is
// stored (compiler/precision/AssignPrecision.cpp is the policy). The graph has
// what the earlier stages make: an embedding gather, an RMSNorm, a linear
// layer with LoRA, attention scores -> scale -> mask -> softmax, a residual
// add, the lm_head and the loss; @train_step adds the first steps of the
// backward sweep and the AdamW updates; @loss_grad returns LoRA gradients.
// RUN: tessera-opt %s --tessera-assign-precision=precision=bf16 | FileCheck %s --check-prefixes=CHECK,BF16
// RUN: tessera-opt %s --tessera-assign-precision=precision=f16 | FileCheck %s --check-prefixes=CHECK,F16
// fp32 leaves the graph as it is (only the module attribute is absent).
// RUN: tessera-opt %s --tessera-assign-precision=precision=fp32 | FileCheck %s --check-prefix=FP32
// RUN: tessera-opt %s | FileCheck %s --check-prefix=FP32
// RUN: not tessera-opt %s --tessera-assign-precision=precision=fp8 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: error: tessera-assign-precision: unknown precision 'fp8' (fp32, f16 or bf16)

// BF16: module attributes {tessera.precision = "bf16"}
// F16: module attributes {tessera.precision = "f16"}
// FP32-NOT: bf16
// FP32-NOT: f16
// FP32-NOT: tessera.precision

module {
// CHECK-LABEL: func.func @loss(
// BF16-SAME: -> tensor<f32>
// Frozen weights are stored in the half type, LoRA factors in f32.
// BF16: %[[EMB:.*]] = tessera.param frozen "embed" : tensor<16x8xbf16>
// BF16: tessera.param frozen "norm.weight" : tensor<8xbf16>
// BF16: tessera.param frozen "q.weight" : tensor<8x8xbf16>
// BF16: tessera.param lora_a "q.lora_A" : tensor<2x8xf32>
// BF16: tessera.param lora_b "q.lora_B" : tensor<8x2xf32>
// F16: tessera.param frozen "q.weight" : tensor<8x8xf16>
// F16: tessera.param lora_a "q.lora_A" : tensor<2x8xf32>
// Constants keep their type.
// CHECK: tessera.constant {{.*}} : tensor<1x4x4xf32>
// The residual stream starts f32 at the embedding lookup.
// BF16: %[[H:.*]] = tessera.gather %[[EMB]][%arg0] {{.*}} -> tensor<1x4x8xf32>
// Norm statistics in f32; the normalised value is f32 (residual operand)
// until the weight multiply, whose result only feeds matmuls: narrowed.
// BF16: %[[SQ:.*]] = tessera.binary mul %[[H]], %[[H]] {{.*}} -> tensor<1x4x8xf32>
// BF16: tessera.reduce mean %[[SQ]] {{.*}} -> tensor<1x4x1xf32>
// BF16: tessera.unary rsqrt {{.*}} : tensor<1x4x1xf32>
// BF16: %[[XN:.*]] = tessera.binary mul %[[H]], {{.*}} -> tensor<1x4x8xf32>
// BF16: %[[X:.*]] = tessera.binary mul %[[XN]], {{.*}} : (tensor<1x4x8xf32>, tensor<8xbf16>) -> tensor<1x4x8xbf16>
// F16: tessera.binary mul {{.*}} : (tensor<1x4x8xf32>, tensor<8xf16>) -> tensor<1x4x8xf16>
// Linear layer and LoRA path: matmul results and their sums in the half type.
// BF16: %[[Q:.*]] = tessera.matmul %[[X]], {{.*}} -> tensor<1x4x8xbf16>
// BF16: tessera.matmul %[[X]], {{.*}} : (tensor<1x4x8xbf16>, tensor<2x8xf32>) -> tensor<1x4x2xbf16>
// BF16: tessera.binary mul {{.*}} : (tensor<1x4x2xbf16>, tensor<f32>) -> tensor<1x4x2xbf16>
// BF16: tessera.matmul {{.*}} : (tensor<1x4x2xbf16>, tensor<8x2xf32>) -> tensor<1x4x8xbf16>
// BF16: %[[QQ:.*]] = tessera.binary add %[[Q]], {{.*}} -> tensor<1x4x8xbf16>
// Scores before the softmax (matmul, scale, mask) stay f32; the
// probabilities are stored in the half type.
// BF16: %[[S:.*]] = tessera.matmul %[[QQ]], %[[QQ]] {{.*}} -> tensor<1x4x4xf32>
// BF16: tessera.binary mul %[[S]], {{.*}} -> tensor<1x4x4xf32>
// BF16: %[[SM:.*]] = tessera.binary add {{.*}} : (tensor<1x4x4xf32>, tensor<1x4x4xf32>) -> tensor<1x4x4xf32>
// BF16: %[[P:.*]] = tessera.softmax %[[SM]] : tensor<1x4x4xf32> -> tensor<1x4x4xbf16>
// BF16: %[[O:.*]] = tessera.matmul %[[P]], %[[QQ]] {{.*}} -> tensor<1x4x8xbf16>
// The residual add is f32.
// BF16: %[[H2:.*]] = tessera.binary add %[[H]], %[[O]] : (tensor<1x4x8xf32>, tensor<1x4x8xbf16>) -> tensor<1x4x8xf32>
// An f32 elementwise result read only by matmuls is narrowed too.
// BF16: tessera.unary silu %[[H2]] : tensor<1x4x8xf32> -> tensor<1x4x8xbf16>
// The logits feed only the cross-entropy: f32.
// BF16: %[[LG:.*]] = tessera.matmul {{.*}} -> tensor<1x4x16xf32>
// BF16: tessera.cross_entropy %[[LG]], %arg1 {{.*}} -> tensor<f32>
  func.func @loss(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>) -> tensor<f32> {
    %emb = tessera.param frozen "embed" : tensor<16x8xf32>
    %nw = tessera.param frozen "norm.weight" : tensor<8xf32>
    %wq = tessera.param frozen "q.weight" : tensor<8x8xf32>
    %a = tessera.param lora_a "q.lora_A" : tensor<2x8xf32>
    %b = tessera.param lora_b "q.lora_B" : tensor<8x2xf32>
    %head = tessera.param frozen "head.weight" : tensor<16x8xf32>
    %mask = tessera.constant dense<[[[0.0, -3.0e38, -3.0e38, -3.0e38], [0.0, 0.0, -3.0e38, -3.0e38], [0.0, 0.0, 0.0, -3.0e38], [0.0, 0.0, 0.0, 0.0]]]> : tensor<1x4x4xf32>
    %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x4xi32>) -> tensor<1x4x8xf32>
    %sq = tessera.binary mul %h, %h : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %ms = tessera.reduce mean %sq {axes = array<i64: 2>, keepdims = true} : tensor<1x4x8xf32> -> tensor<1x4x1xf32>
    %eps = tessera.constant dense<1.0e-5> : tensor<f32>
    %var = tessera.binary add %ms, %eps : (tensor<1x4x1xf32>, tensor<f32>) -> tensor<1x4x1xf32>
    %r = tessera.unary rsqrt %var : tensor<1x4x1xf32>
    %xn = tessera.binary mul %h, %r : (tensor<1x4x8xf32>, tensor<1x4x1xf32>) -> tensor<1x4x8xf32>
    %x = tessera.binary mul %xn, %nw : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
    %q = tessera.matmul %x, %wq {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
    %xa = tessera.matmul %x, %a {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<2x8xf32>) -> tensor<1x4x2xf32>
    %sc = tessera.constant dense<2.0> : tensor<f32>
    %xas = tessera.binary mul %xa, %sc : (tensor<1x4x2xf32>, tensor<f32>) -> tensor<1x4x2xf32>
    %xab = tessera.matmul %xas, %b {transpose_rhs = true} : (tensor<1x4x2xf32>, tensor<8x2xf32>) -> tensor<1x4x8xf32>
    %qq = tessera.binary add %q, %xab : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %s = tessera.matmul %qq, %qq {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x4xf32>
    %k = tessera.constant dense<0.35> : tensor<f32>
    %ss = tessera.binary mul %s, %k : (tensor<1x4x4xf32>, tensor<f32>) -> tensor<1x4x4xf32>
    %sm = tessera.binary add %ss, %mask : (tensor<1x4x4xf32>, tensor<1x4x4xf32>) -> tensor<1x4x4xf32>
    %p = tessera.softmax %sm : tensor<1x4x4xf32> -> tensor<1x4x4xf32>
    %o = tessera.matmul %p, %qq : (tensor<1x4x4xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %h2 = tessera.binary add %h, %o : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %g = tessera.unary silu %h2 : tensor<1x4x8xf32>
    %lg = tessera.matmul %g, %head {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    %l = tessera.cross_entropy %lg, %labels : (tensor<1x4x16xf32>, tensor<1x4xi32>) -> tensor<f32>
    return %l : tensor<f32>
  }

// CHECK-LABEL: func.func @train_step(
// The loss gradient: stored in the half type (f16 mode: f32, as everything
// computed from it).
// BF16: %[[DL:.*]] = tessera.cross_entropy_grad {{.*}} -> tensor<1x4x16xbf16>
// F16: %[[DL:.*]] = tessera.cross_entropy_grad {{.*}} -> tensor<1x4x16xf32>
// BF16: %[[DG:.*]] = tessera.matmul %[[DL]], {{.*}} : (tensor<1x4x16xbf16>, tensor<16x8xbf16>) -> tensor<1x4x8xbf16>
// F16: %[[DG:.*]] = tessera.matmul %[[DL]], {{.*}} : (tensor<1x4x16xf32>, tensor<16x8xf16>) -> tensor<1x4x8xf32>
// An f32 elementwise result read by something else than a matmul (the
// sigmoid, read by the multiply) stays f32; the product, read only by the
// LoRA-gradient matmuls through a reshape, is narrowed.
// BF16: %[[SG:.*]] = tessera.unary sigmoid {{.*}} : tensor<1x4x8xf32>{{$}}
// BF16: %[[DH:.*]] = tessera.binary mul %[[DG]], %[[SG]] : (tensor<1x4x8xbf16>, tensor<1x4x8xf32>) -> tensor<1x4x8xbf16>
// F16: tessera.binary mul %[[DG]], {{.*}} : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
// A LoRA gradient (what adamw_update reads) is f32 in every mode, also
// through the reshape in front of it.
// CHECK: %[[GB:.*]] = tessera.matmul {{.*}} -> tensor<8x2xf32>
// CHECK: tessera.matmul {{.*}} -> tensor<2x8xf32>
// CHECK: tessera.reshape {{.*}} : tensor<2x8xf32> -> tensor<1x2x8xf32>
// CHECK: %[[GA:.*]] = tessera.reshape {{.*}} : tensor<1x2x8xf32> -> tensor<2x8xf32>
// CHECK: tessera.adamw_update "q.lora_B", %[[GB]], %arg2 : tensor<8x2xf32>, tensor<8xf32>
// CHECK: tessera.adamw_update "q.lora_A", %[[GA]], %arg2 : tensor<2x8xf32>, tensor<8xf32>
  func.func @train_step(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>, %hp: tensor<8xf32>) -> tensor<f32> {
    %emb = tessera.param frozen "embed" : tensor<16x8xf32>
    %a = tessera.param lora_a "q.lora_A" : tensor<2x8xf32>
    %head = tessera.param frozen "head.weight" : tensor<16x8xf32>
    %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x4xi32>) -> tensor<1x4x8xf32>
    %g = tessera.unary silu %h : tensor<1x4x8xf32>
    %lg = tessera.matmul %g, %head {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    %l = tessera.cross_entropy %lg, %labels : (tensor<1x4x16xf32>, tensor<1x4xi32>) -> tensor<f32>
    %one = tessera.constant dense<1.0> : tensor<f32>
    %dl = tessera.cross_entropy_grad %lg, %labels, %one : (tensor<1x4x16xf32>, tensor<1x4xi32>, tensor<f32>) -> tensor<1x4x16xf32>
    %dg = tessera.matmul %dl, %head : (tensor<1x4x16xf32>, tensor<16x8xf32>) -> tensor<1x4x8xf32>
    %sig = tessera.unary sigmoid %h : tensor<1x4x8xf32>
    %dh = tessera.binary mul %dg, %sig : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %dh2 = tessera.reshape %dh : tensor<1x4x8xf32> -> tensor<4x8xf32>
    %xa = tessera.matmul %h, %a {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<2x8xf32>) -> tensor<1x4x2xf32>
    %xa2 = tessera.reshape %xa : tensor<1x4x2xf32> -> tensor<4x2xf32>
    %gb = tessera.matmul %dh2, %xa2 {transpose_lhs = true} : (tensor<4x8xf32>, tensor<4x2xf32>) -> tensor<8x2xf32>
    %gat = tessera.matmul %xa2, %dh2 {transpose_lhs = true} : (tensor<4x2xf32>, tensor<4x8xf32>) -> tensor<2x8xf32>
    %gat3 = tessera.reshape %gat : tensor<2x8xf32> -> tensor<1x2x8xf32>
    %ga = tessera.reshape %gat3 : tensor<1x2x8xf32> -> tensor<2x8xf32>
    tessera.adamw_update "q.lora_B", %gb, %hp : tensor<8x2xf32>, tensor<8xf32>
    tessera.adamw_update "q.lora_A", %ga, %hp : tensor<2x8xf32>, tensor<8xf32>
    return %l : tensor<f32>
  }

// A product with a frozen weight reads an f32 operand (a value with other f32
// uses: the residual stream, or its gradient in a bf16 backward) through one
// cast to the half type, shared by the products; a LoRA product does not.
// (The f16 backward keeps its f32 operands: @train_step's F16 lines.)
// CHECK-LABEL: func.func @weight_products(
// CHECK: %[[H:.*]] = tessera.gather {{.*}} -> tensor<1x4x8xf32>
// BF16-NEXT: %[[C:.*]] = tessera.cast %[[H]] : tensor<1x4x8xf32> -> tensor<1x4x8xbf16>
// F16-NEXT: %[[C:.*]] = tessera.cast %[[H]] : tensor<1x4x8xf32> -> tensor<1x4x8xf16>
// BF16-NEXT: tessera.matmul %[[C]], {{.*}} : (tensor<1x4x8xbf16>, tensor<8x8xbf16>)
// BF16-NEXT: tessera.matmul %[[C]], {{.*}} : (tensor<1x4x8xbf16>, tensor<8x8xbf16>)
// F16-NEXT: tessera.matmul %[[C]], {{.*}} : (tensor<1x4x8xf16>, tensor<8x8xf16>)
// F16-NEXT: tessera.matmul %[[C]], {{.*}} : (tensor<1x4x8xf16>, tensor<8x8xf16>)
// CHECK-NEXT: tessera.matmul %[[H]], {{.*}} : (tensor<1x4x8xf32>, tensor<2x8xf32>)
// CHECK-NOT: tessera.cast
  func.func @weight_products(%ids: tensor<1x4xi32>) -> (tensor<1x4x8xf32>, tensor<1x4x2xf32>) {
    %emb = tessera.param frozen "embed" : tensor<16x8xf32>
    %w = tessera.param frozen "w" : tensor<8x8xf32>
    %a = tessera.param lora_a "w.lora_A" : tensor<2x8xf32>
    %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x4xi32>) -> tensor<1x4x8xf32>
    %y1 = tessera.matmul %h, %w {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
    %y2 = tessera.matmul %h, %w : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
    %xa = tessera.matmul %h, %a {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<2x8xf32>) -> tensor<1x4x2xf32>
    %s = tessera.binary add %h, %y1 : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    %s2 = tessera.binary add %s, %y2 : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
    return %s2, %xa : tensor<1x4x8xf32>, tensor<1x4x2xf32>
  }

// The gradients @loss_grad returns are LoRA gradients too: f32.
// CHECK-LABEL: func.func @loss_grad(
// CHECK-SAME: -> (tensor<f32>, tensor<4x8xf32> {tessera.grad_of = "q.lora_B"})
// BF16: tessera.unary exp {{.*}} -> tensor<1x4x8xbf16>
// CHECK: %[[R:.*]] = tessera.matmul {{.*}} -> tensor<4x8xf32>
// CHECK: return {{.*}}, %[[R]] : tensor<f32>, tensor<4x8xf32>
  func.func @loss_grad(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>) -> (tensor<f32>, tensor<4x8xf32> {tessera.grad_of = "q.lora_B"}) {
    %emb = tessera.param frozen "embed" : tensor<16x8xf32>
    %w = tessera.param frozen "w" : tensor<8x8xf32>
    %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x4xi32>) -> tensor<1x4x8xf32>
    %e = tessera.unary exp %h : tensor<1x4x8xf32>
    %e2 = tessera.reshape %e : tensor<1x4x8xf32> -> tensor<4x8xf32>
    %r = tessera.matmul %e2, %w : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
    %lg = tessera.matmul %h, %w : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
    %l = tessera.cross_entropy %lg, %labels : (tensor<1x4x8xf32>, tensor<1x4xi32>) -> tensor<f32>
    return %l, %r : tensor<f32>, tensor<4x8xf32>
  }

// Grouped-query keys: an f32 key (RoPE of a normed k, computed from the f32
// statistics) reaches the score product through the repeat over query heads
// (reshape, broadcast, reshape); read by products only, it is stored in half,
// so that both operands of q k^T are half (tensor cores).
// CHECK-LABEL: func.func @gqa_keys(
// BF16: %[[K:.*]] = tessera.binary mul {{.*}} -> tensor<1x1x4x8xbf16>
// BF16: tessera.broadcast {{.*}} : tensor<1x1x1x4x8xbf16> -> tensor<1x1x2x4x8xbf16>
// BF16: tessera.matmul {{.*}} : (tensor<1x2x4x8xbf16>, tensor<1x2x4x8xbf16>) -> tensor<1x2x4x4xbf16>
  func.func @gqa_keys(%ids: tensor<1x4xi32>, %q: tensor<1x2x4x8xf32>) -> tensor<1x2x4x4xf32> {
    %emb = tessera.param frozen "embed" : tensor<16x8xf32>
    %wq = tessera.param frozen "wq" : tensor<8x8xf32>
    %wk = tessera.param frozen "wk" : tensor<8x8xf32>
    %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x4xi32>) -> tensor<1x4x8xf32>
    %kp = tessera.matmul %h, %wk {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
    %qp = tessera.matmul %h, %wq {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
    %k4 = tessera.reshape %kp : tensor<1x4x8xf32> -> tensor<1x1x4x8xf32>
    %sq = tessera.binary mul %k4, %k4 : (tensor<1x1x4x8xf32>, tensor<1x1x4x8xf32>) -> tensor<1x1x4x8xf32>
    %ms = tessera.reduce mean %sq {axes = array<i64: 3>, keepdims = true} : tensor<1x1x4x8xf32> -> tensor<1x1x4x1xf32>
    %kn = tessera.binary mul %k4, %ms : (tensor<1x1x4x8xf32>, tensor<1x1x4x1xf32>) -> tensor<1x1x4x8xf32>
    %k5 = tessera.reshape %kn : tensor<1x1x4x8xf32> -> tensor<1x1x1x4x8xf32>
    %kb = tessera.broadcast %k5 : tensor<1x1x1x4x8xf32> -> tensor<1x1x2x4x8xf32>
    %kr = tessera.reshape %kb : tensor<1x1x2x4x8xf32> -> tensor<1x2x4x8xf32>
    %q4 = tessera.reshape %qp : tensor<1x4x8xf32> -> tensor<1x1x4x8xf32>
    %qb = tessera.broadcast %q4 : tensor<1x1x4x8xf32> -> tensor<1x2x4x8xf32>
    %s = tessera.matmul %qb, %kr {transpose_rhs = true} : (tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>) -> tensor<1x2x4x4xf32>
    return %s : tensor<1x2x4x4xf32>
  }
}
