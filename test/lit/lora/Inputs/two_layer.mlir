// A 2-layer decoder-shaped @forward (B=1, T=4, hidden 8, mlp 16, vocab 16) built
// from tessera tensor ops as the importer emits them: linear = matmul with
// transpose_rhs against a frozen [out, in] param.
func.func @forward(%ids: tensor<1x4xi32>) -> tensor<1x4x16xf32> {
  %emb = tessera.param frozen "model.embed_tokens.weight" : tensor<16x8xf32>
  %h0 = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<1x4xi32>) -> tensor<1x4x8xf32>
  %w_q0 = tessera.param frozen "model.layers.0.self_attn.q_proj.weight" : tensor<8x8xf32>
  %q0 = tessera.matmul %h0, %w_q0 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w_k0 = tessera.param frozen "model.layers.0.self_attn.k_proj.weight" : tensor<8x8xf32>
  %k0 = tessera.matmul %h0, %w_k0 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w_v0 = tessera.param frozen "model.layers.0.self_attn.v_proj.weight" : tensor<8x8xf32>
  %v0 = tessera.matmul %h0, %w_v0 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %s0 = tessera.matmul %q0, %k0 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x4xf32>
  %p0 = tessera.softmax %s0 : tensor<1x4x4xf32>
  %a0 = tessera.matmul %p0, %v0 : (tensor<1x4x4xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  %w_o0 = tessera.param frozen "model.layers.0.self_attn.o_proj.weight" : tensor<8x8xf32>
  %o0 = tessera.matmul %a0, %w_o0 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %r0 = tessera.binary add %h0, %o0 : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  %w_g0 = tessera.param frozen "model.layers.0.mlp.gate_proj.weight" : tensor<16x8xf32>
  %g0 = tessera.matmul %r0, %w_g0 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  %w_u0 = tessera.param frozen "model.layers.0.mlp.up_proj.weight" : tensor<16x8xf32>
  %u0 = tessera.matmul %r0, %w_u0 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  %sg0 = tessera.unary silu %g0 : tensor<1x4x16xf32>
  %m0 = tessera.binary mul %sg0, %u0 : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
  %w_d0 = tessera.param frozen "model.layers.0.mlp.down_proj.weight" : tensor<8x16xf32>
  %d0 = tessera.matmul %m0, %w_d0 {transpose_rhs = true} : (tensor<1x4x16xf32>, tensor<8x16xf32>) -> tensor<1x4x8xf32>
  %h1 = tessera.binary add %r0, %d0 : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  %w_q1 = tessera.param frozen "model.layers.1.self_attn.q_proj.weight" : tensor<8x8xf32>
  %q1 = tessera.matmul %h1, %w_q1 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w_k1 = tessera.param frozen "model.layers.1.self_attn.k_proj.weight" : tensor<8x8xf32>
  %k1 = tessera.matmul %h1, %w_k1 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %w_v1 = tessera.param frozen "model.layers.1.self_attn.v_proj.weight" : tensor<8x8xf32>
  %v1 = tessera.matmul %h1, %w_v1 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %s1 = tessera.matmul %q1, %k1 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x4xf32>
  %p1 = tessera.softmax %s1 : tensor<1x4x4xf32>
  %a1 = tessera.matmul %p1, %v1 : (tensor<1x4x4xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  %w_o1 = tessera.param frozen "model.layers.1.self_attn.o_proj.weight" : tensor<8x8xf32>
  %o1 = tessera.matmul %a1, %w_o1 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<8x8xf32>) -> tensor<1x4x8xf32>
  %r1 = tessera.binary add %h1, %o1 : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  %w_g1 = tessera.param frozen "model.layers.1.mlp.gate_proj.weight" : tensor<16x8xf32>
  %g1 = tessera.matmul %r1, %w_g1 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  %w_u1 = tessera.param frozen "model.layers.1.mlp.up_proj.weight" : tensor<16x8xf32>
  %u1 = tessera.matmul %r1, %w_u1 {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  %sg1 = tessera.unary silu %g1 : tensor<1x4x16xf32>
  %m1 = tessera.binary mul %sg1, %u1 : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
  %w_d1 = tessera.param frozen "model.layers.1.mlp.down_proj.weight" : tensor<8x16xf32>
  %d1 = tessera.matmul %m1, %w_d1 {transpose_rhs = true} : (tensor<1x4x16xf32>, tensor<8x16xf32>) -> tensor<1x4x8xf32>
  %h2 = tessera.binary add %r1, %d1 : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  %w_lm = tessera.param frozen "lm_head.weight" : tensor<16x8xf32>
  %logits = tessera.matmul %h2, %w_lm {transpose_rhs = true} : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
  return %logits : tensor<1x4x16xf32>
}
