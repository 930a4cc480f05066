// all-linear skips an output head that reuses the embedding table (tied
// embeddings), as PEFT does; naming it explicitly still adapts it.
// RUN: tessera-opt %s --tessera-inject-lora="targets=all-linear rank=2 alpha=2" | FileCheck %s
// RUN: tessera-opt %s --tessera-inject-lora="targets=embed_tokens rank=2 alpha=2" | FileCheck %s --check-prefix=EXPLICIT
// CHECK: modules = ["layers.0.mlp.up_proj"]
// CHECK-NOT: embed_tokens.lora
// EXPLICIT: modules = ["embed_tokens"]
// EXPLICIT: tessera.param lora_a "embed_tokens.lora_A" : tensor<2x4xf32>
// EXPLICIT: tessera.param lora_b "embed_tokens.lora_B" : tensor<7x2xf32>
func.func @forward(%ids: tensor<1x3xi32>) -> tensor<1x3x7xf32> {
  %emb = tessera.param frozen "model.embed_tokens.weight" : tensor<7x4xf32>
  %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<7x4xf32>, tensor<1x3xi32>) -> tensor<1x3x4xf32>
  %w = tessera.param frozen "model.layers.0.mlp.up_proj.weight" : tensor<4x4xf32>
  %y = tessera.matmul %h, %w {transpose_rhs = true} : (tensor<1x3x4xf32>, tensor<4x4xf32>) -> tensor<1x3x4xf32>
  %emb2 = tessera.param frozen "model.embed_tokens.weight" : tensor<7x4xf32>
  %logits = tessera.matmul %y, %emb2 {transpose_rhs = true} : (tensor<1x3x4xf32>, tensor<7x4xf32>) -> tensor<1x3x7xf32>
  return %logits : tensor<1x3x7xf32>
}
