// The residual walk on IR that already holds raised ops: a parallel layer
// (attention and MLP in one residual branch, GPT-J style) followed by a
// sequential one. Names come from dataflow; params are deliberately misnamed.
// RUN: tessera-opt %s --tessera-raise | FileCheck %s

// CHECK: tessera.arch = {activation = "silu", arch = "llama", {{.*}}head_dim = 2 : i64, heads = 2 : i64, hidden = 4 : i64, intermediate = 6 : i64, kv_heads = 2 : i64, layers = 2 : i64, linear_layers = 15 : i64, {{.*}}vocab = 5 : i64}
// CHECK: tessera.matmul %{{.*}}, %{{.*}} {tessera.layer = 0 : i64, tessera.module = "layers.0.self_attn.q_proj"}
// CHECK: tessera.matmul %{{.*}}, %{{.*}} {tessera.layer = 0 : i64, tessera.module = "layers.0.self_attn.k_proj"}
// CHECK: tessera.matmul %{{.*}}, %{{.*}} {tessera.layer = 0 : i64, tessera.module = "layers.0.self_attn.v_proj"}
// CHECK: tessera.matmul %{{.*}}, %{{.*}} {tessera.layer = 0 : i64, tessera.module = "layers.0.self_attn.o_proj"}
// CHECK: tessera.matmul %{{.*}}, %{{.*}} {tessera.layer = 0 : i64, tessera.module = "layers.0.mlp.up_proj"}
// CHECK: tessera.matmul %{{.*}}, %{{.*}} {tessera.layer = 0 : i64, tessera.module = "layers.0.mlp.gate_proj"}
// CHECK: tessera.matmul %{{.*}}, %{{.*}} {tessera.layer = 0 : i64, tessera.module = "layers.0.mlp.down_proj"}
// CHECK: %[[BR:.*]] = tessera.binary add %{{.*}}, %{{.*}} {tessera.layer = 0 : i64}
// CHECK-NEXT: %[[H1:.*]] = tessera.binary add %{{.*}}, %[[BR]] {tessera.layer = 0 : i64}
// CHECK: tessera.module = "layers.1.self_attn.q_proj"
// CHECK: tessera.module = "layers.1.self_attn.o_proj"
// CHECK: tessera.binary add %[[H1]], %{{.*}} {tessera.layer = 1 : i64}
// CHECK: tessera.module = "layers.1.mlp.gate_proj"
// CHECK: tessera.module = "layers.1.mlp.down_proj"
// CHECK: tessera.module = "lm_head"
func.func @forward(%ids: tensor<1x2xi32>) -> tensor<1x2x5xf32> {
  %emb = tessera.param frozen "w0" : tensor<5x4xf32>
  %nw = tessera.param frozen "w1" : tensor<4xf32>
  %wq = tessera.param frozen "w2" : tensor<4x4xf32>
  %wk = tessera.param frozen "w3" : tensor<4x4xf32>
  %wv = tessera.param frozen "w4" : tensor<4x4xf32>
  %wo = tessera.param frozen "w5" : tensor<4x4xf32>
  %wg = tessera.param frozen "w6" : tensor<4x6xf32>
  %wu = tessera.param frozen "w7" : tensor<4x6xf32>
  %wd = tessera.param frozen "w8" : tensor<6x4xf32>
  %head = tessera.param frozen "w9" : tensor<4x5xf32>
  %h0 = tessera.embedding %emb[%ids] : (tensor<5x4xf32>, tensor<1x2xi32>) -> tensor<1x2x4xf32>
  // Layer 0, parallel: h1 = h0 + o_proj(attn(norm h0)) + down(glu(norm h0)).
  %n0 = tessera.rms_norm %h0, %nw {eps = 1.0e-6 : f64} : (tensor<1x2x4xf32>, tensor<4xf32>) -> tensor<1x2x4xf32>
  %q = tessera.matmul %n0, %wq : (tensor<1x2x4xf32>, tensor<4x4xf32>) -> tensor<1x2x4xf32>
  %q4 = tessera.reshape %q : tensor<1x2x4xf32> -> tensor<1x2x2x2xf32>
  %qt = tessera.transpose %q4 [0, 2, 1, 3] : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
  %k = tessera.matmul %n0, %wk : (tensor<1x2x4xf32>, tensor<4x4xf32>) -> tensor<1x2x4xf32>
  %k4 = tessera.reshape %k : tensor<1x2x4xf32> -> tensor<1x2x2x2xf32>
  %kt = tessera.transpose %k4 [0, 2, 1, 3] : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
  %v = tessera.matmul %n0, %wv : (tensor<1x2x4xf32>, tensor<4x4xf32>) -> tensor<1x2x4xf32>
  %v4 = tessera.reshape %v : tensor<1x2x4xf32> -> tensor<1x2x2x2xf32>
  %vt = tessera.transpose %v4 [0, 2, 1, 3] : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
  %a = tessera.attention %qt, %kt, %vt {scale = 0.7 : f64, kv_groups = 1 : i64} : (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
  %at = tessera.transpose %a [0, 2, 1, 3] : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
  %a3 = tessera.reshape %at : tensor<1x2x2x2xf32> -> tensor<1x2x4xf32>
  %o = tessera.matmul %a3, %wo : (tensor<1x2x4xf32>, tensor<4x4xf32>) -> tensor<1x2x4xf32>
  // up before gate: names follow the GLU operands, not the order.
  %u = tessera.matmul %n0, %wu : (tensor<1x2x4xf32>, tensor<4x6xf32>) -> tensor<1x2x6xf32>
  %g = tessera.matmul %n0, %wg : (tensor<1x2x4xf32>, tensor<4x6xf32>) -> tensor<1x2x6xf32>
  %m = tessera.glu silu %g, %u : tensor<1x2x6xf32>
  %d = tessera.matmul %m, %wd : (tensor<1x2x6xf32>, tensor<6x4xf32>) -> tensor<1x2x4xf32>
  %br = tessera.binary add %o, %d : (tensor<1x2x4xf32>, tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %h1 = tessera.binary add %h0, %br : (tensor<1x2x4xf32>, tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  // Layer 1, sequential, reusing the weights (names are per use).
  %n1 = tessera.rms_norm %h1, %nw {eps = 1.0e-6 : f64} : (tensor<1x2x4xf32>, tensor<4xf32>) -> tensor<1x2x4xf32>
  %q_ = tessera.matmul %n1, %wq : (tensor<1x2x4xf32>, tensor<4x4xf32>) -> tensor<1x2x4xf32>
  %q4_ = tessera.reshape %q_ : tensor<1x2x4xf32> -> tensor<1x2x2x2xf32>
  %qt_ = tessera.transpose %q4_ [0, 2, 1, 3] : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
  %k_ = tessera.matmul %n1, %wk : (tensor<1x2x4xf32>, tensor<4x4xf32>) -> tensor<1x2x4xf32>
  %k4_ = tessera.reshape %k_ : tensor<1x2x4xf32> -> tensor<1x2x2x2xf32>
  %kt_ = tessera.transpose %k4_ [0, 2, 1, 3] : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
  %v_ = tessera.matmul %n1, %wv : (tensor<1x2x4xf32>, tensor<4x4xf32>) -> tensor<1x2x4xf32>
  %v4_ = tessera.reshape %v_ : tensor<1x2x4xf32> -> tensor<1x2x2x2xf32>
  %vt_ = tessera.transpose %v4_ [0, 2, 1, 3] : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
  %a_ = tessera.attention %qt_, %kt_, %vt_ {scale = 0.7 : f64, kv_groups = 1 : i64} : (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
  %at_ = tessera.transpose %a_ [0, 2, 1, 3] : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
  %a3_ = tessera.reshape %at_ : tensor<1x2x2x2xf32> -> tensor<1x2x4xf32>
  %o_ = tessera.matmul %a3_, %wo : (tensor<1x2x4xf32>, tensor<4x4xf32>) -> tensor<1x2x4xf32>
  %h2 = tessera.binary add %h1, %o_ : (tensor<1x2x4xf32>, tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %n2 = tessera.rms_norm %h2, %nw {eps = 1.0e-6 : f64} : (tensor<1x2x4xf32>, tensor<4xf32>) -> tensor<1x2x4xf32>
  %g_ = tessera.matmul %n2, %wg : (tensor<1x2x4xf32>, tensor<4x6xf32>) -> tensor<1x2x6xf32>
  %u_ = tessera.matmul %n2, %wu : (tensor<1x2x4xf32>, tensor<4x6xf32>) -> tensor<1x2x6xf32>
  %m_ = tessera.glu silu %g_, %u_ : tensor<1x2x6xf32>
  %d_ = tessera.matmul %m_, %wd : (tensor<1x2x6xf32>, tensor<6x4xf32>) -> tensor<1x2x4xf32>
  %h3 = tessera.binary add %h2, %d_ : (tensor<1x2x4xf32>, tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %nf = tessera.rms_norm %h3, %nw {eps = 1.0e-6 : f64} : (tensor<1x2x4xf32>, tensor<4xf32>) -> tensor<1x2x4xf32>
  %logits = tessera.matmul %nf, %head : (tensor<1x2x4xf32>, tensor<4x5xf32>) -> tensor<1x2x5xf32>
  return %logits : tensor<1x2x5xf32>
}
