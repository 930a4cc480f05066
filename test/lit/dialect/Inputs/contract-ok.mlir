// The contract attributes where the passes leave them, printed back as written
// (checked by ../contract.mlir; not a test of its own).
// CHECK: module attributes {tessera.arch = {arch = "llama", layers = 1 : i64}, tessera.lora = {alpha = 4.000000e+00 : f64, rank = 2 : i64}, tessera.memory = {activation_slots = 3 : i64}, tessera.precision = "bf16", tessera.vocab = 32 : i64}
module attributes {tessera.arch = {arch = "llama", layers = 1 : i64}, tessera.lora = {rank = 2 : i64, alpha = 4.0 : f64}, tessera.memory = {activation_slots = 3 : i64}, tessera.precision = "bf16", tessera.vocab = 32 : i64} {
  // CHECK: func.func @forward(%{{.*}}: tensor<2x3xf32>, %{{.*}}: tensor<4x3xf32>) -> tensor<2x4xf32> attributes {tessera.role = #tessera<program_role forward>}
  // CHECK: tessera.matmul {{.*}} {tessera.layer = 0 : i64, tessera.module = "layers.0.mlp.up_proj", transpose_rhs = true}
  func.func @forward(%x: tensor<2x3xf32>, %w: tensor<4x3xf32>) -> tensor<2x4xf32> attributes {tessera.role = #tessera<program_role forward>} {
    %0 = tessera.matmul %x, %w {transpose_rhs = true, tessera.layer = 0 : i64, tessera.module = "layers.0.mlp.up_proj"} : (tensor<2x3xf32>, tensor<4x3xf32>) -> tensor<2x4xf32>
    return %0 : tensor<2x4xf32>
  }
  // CHECK: func.func @loss_grad() -> (tensor<f32>, tensor<f32> {tessera.grad_of = "m.lora_A"}) attributes {tessera.role = #tessera<program_role loss_grad>}
  func.func @loss_grad() -> (tensor<f32>, tensor<f32> {tessera.grad_of = "m.lora_A"}) attributes {tessera.role = #tessera<program_role loss_grad>} {
    %c = tessera.constant dense<0.0> : tensor<f32>
    return %c, %c : tensor<f32>, tensor<f32>
  }
  // CHECK: func.func @prefill(%{{.*}}: tensor<1x4xi32> {tessera.buffer = "input_ids", tessera.buffer_kind = "input"}) -> (tensor<1x4x32xf32> {tessera.buffer = "prefill.logits", tessera.buffer_kind = "output"}) attributes {tessera.role = #tessera<program_role prefill>}
  func.func @prefill(%ids: tensor<1x4xi32> {tessera.buffer = "input_ids", tessera.buffer_kind = "input"}) -> (tensor<1x4x32xf32> {tessera.buffer = "prefill.logits", tessera.buffer_kind = "output"}) attributes {tessera.role = #tessera<program_role prefill>} {
    %c = tessera.constant dense<0.0> : tensor<1x4x32xf32>
    return %c : tensor<1x4x32xf32>
  }
}
