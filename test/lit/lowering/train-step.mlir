// Buffer assignment, programs and dispatches for a tiny LoRA model: shared
// inputs/weights/LoRA factors, one loss buffer, gradients computed in place
// (also through a reshape), optimizer state, reshape aliases, dead @forward
// dropped, dedup of identical kernels.
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels | FileCheck %s

module attributes {tessera.lora = {rank = 2 : i64, alpha = 4.0 : f64}} {
  func.func @forward(%ids: tensor<2x4xi32>) -> tensor<2x4x16xf32> {
    %emb = tessera.param frozen "model.embed_tokens.weight" : tensor<16x8xf32>
    %x = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
    %lm = tessera.param frozen "lm_head.weight" : tensor<16x8xf32>
    %logits = tessera.matmul %x, %lm {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
    return %logits : tensor<2x4x16xf32>
  }
  func.func @loss(%ids: tensor<2x4xi32>, %labels: tensor<2x4xi32>) -> tensor<f32> {
    %emb = tessera.param frozen "model.embed_tokens.weight" : tensor<16x8xf32>
    %x = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
    %w = tessera.param frozen "model.layers.0.mlp.weight" : tensor<8x8xf32>
    %y = tessera.matmul %x, %w {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
    %a = tessera.param lora_a "layers.0.mlp.lora_A" : tensor<2x8xf32>
    %b = tessera.param lora_b "layers.0.mlp.lora_B" : tensor<8x2xf32>
    %xa = tessera.matmul %x, %a {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<2x8xf32>) -> tensor<2x4x2xf32>
    %xab = tessera.matmul %xa, %b {transpose_rhs = true} : (tensor<2x4x2xf32>, tensor<8x2xf32>) -> tensor<2x4x8xf32>
    %s = tessera.constant dense<2.0> : tensor<f32>
    %xabs = tessera.binary mul %xab, %s : (tensor<2x4x8xf32>, tensor<f32>) -> tensor<2x4x8xf32>
    %h = tessera.binary add %y, %xabs : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %h2 = tessera.unary silu %h : tensor<2x4x8xf32>
    %lm = tessera.param frozen "lm_head.weight" : tensor<16x8xf32>
    %logits = tessera.matmul %h2, %lm {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
    %loss = tessera.cross_entropy %logits, %labels : (tensor<2x4x16xf32>, tensor<2x4xi32>) -> tensor<f32>
    return %loss : tensor<f32>
  }
  func.func @train_step(%ids: tensor<2x4xi32>, %labels: tensor<2x4xi32>, %hp: tensor<8xf32>) -> tensor<f32> {
    %emb = tessera.param frozen "model.embed_tokens.weight" : tensor<16x8xf32>
    %x = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<16x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
    %w = tessera.param frozen "model.layers.0.mlp.weight" : tensor<8x8xf32>
    %y = tessera.matmul %x, %w {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
    %a = tessera.param lora_a "layers.0.mlp.lora_A" : tensor<2x8xf32>
    %b = tessera.param lora_b "layers.0.mlp.lora_B" : tensor<8x2xf32>
    %xa = tessera.matmul %x, %a {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<2x8xf32>) -> tensor<2x4x2xf32>
    %xab = tessera.matmul %xa, %b {transpose_rhs = true} : (tensor<2x4x2xf32>, tensor<8x2xf32>) -> tensor<2x4x8xf32>
    %s = tessera.constant dense<2.0> : tensor<f32>
    %xabs = tessera.binary mul %xab, %s : (tensor<2x4x8xf32>, tensor<f32>) -> tensor<2x4x8xf32>
    %h = tessera.binary add %y, %xabs : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %h2 = tessera.unary silu %h : tensor<2x4x8xf32>
    %lm = tessera.param frozen "lm_head.weight" : tensor<16x8xf32>
    %logits = tessera.matmul %h2, %lm {transpose_rhs = true} : (tensor<2x4x8xf32>, tensor<16x8xf32>) -> tensor<2x4x16xf32>
    %loss = tessera.cross_entropy %logits, %labels : (tensor<2x4x16xf32>, tensor<2x4xi32>) -> tensor<f32>
    %one = tessera.constant dense<1.0> : tensor<f32>
    %dlogits = tessera.cross_entropy_grad %logits, %labels, %one : (tensor<2x4x16xf32>, tensor<2x4xi32>, tensor<f32>) -> tensor<2x4x16xf32>
    %dh2 = tessera.matmul %dlogits, %lm : (tensor<2x4x16xf32>, tensor<16x8xf32>) -> tensor<2x4x8xf32>
    %sig = tessera.unary sigmoid %h : tensor<2x4x8xf32>
    %c1 = tessera.constant dense<1.0> : tensor<f32>
    %oms = tessera.binary sub %c1, %sig : (tensor<f32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %t1 = tessera.binary mul %h, %oms : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %t2 = tessera.binary add %c1, %t1 : (tensor<f32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %ds = tessera.binary mul %sig, %t2 : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %dh = tessera.binary mul %dh2, %ds : (tensor<2x4x8xf32>, tensor<2x4x8xf32>) -> tensor<2x4x8xf32>
    %dxab = tessera.binary mul %dh, %s : (tensor<2x4x8xf32>, tensor<f32>) -> tensor<2x4x8xf32>
    %dxab2 = tessera.reshape %dxab : tensor<2x4x8xf32> -> tensor<8x8xf32>
    %xa2 = tessera.reshape %xa : tensor<2x4x2xf32> -> tensor<8x2xf32>
    %db = tessera.matmul %dxab2, %xa2 {transpose_lhs = true} : (tensor<8x8xf32>, tensor<8x2xf32>) -> tensor<8x2xf32>
    %dxa = tessera.matmul %dxab, %b : (tensor<2x4x8xf32>, tensor<8x2xf32>) -> tensor<2x4x2xf32>
    %dxa2 = tessera.reshape %dxa : tensor<2x4x2xf32> -> tensor<8x2xf32>
    %x2 = tessera.reshape %x : tensor<2x4x8xf32> -> tensor<8x8xf32>
    %da = tessera.matmul %dxa2, %x2 {transpose_lhs = true} : (tensor<8x2xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
    tessera.adamw_update "layers.0.mlp.lora_A", %da, %hp : tensor<2x8xf32>, tensor<8xf32>
    tessera.adamw_update "layers.0.mlp.lora_B", %db, %hp : tensor<8x2xf32>, tensor<8xf32>
    return %loss : tensor<f32>
  }
}

// Module order: buffers, programs, kernels; @forward and the functions are gone.
// CHECK: module attributes {gpu.container_module
// CHECK-SAME: tessera.vocab = 16 : i64
// CHECK-NOT: func.func
// CHECK-DAG: tessera.buffer input @input_ids : memref<8xi32> {name = "input_ids", shape = array<i64: 2, 4>}
// CHECK-DAG: tessera.buffer input @labels : memref<8xi32> {name = "labels", shape = array<i64: 2, 4>}
// CHECK-DAG: tessera.buffer hparams @hparams : memref<8xf32>
// CHECK-DAG: tessera.buffer weight @model.embed_tokens.weight : memref<128xf32> {name = "model.embed_tokens.weight", shape = array<i64: 16, 8>}
// CHECK-DAG: tessera.buffer lora @layers.0.mlp.lora_A : memref<16xf32> {name = "layers.0.mlp.lora_A", shape = array<i64: 2, 8>}
// CHECK-DAG: tessera.buffer lora @layers.0.mlp.lora_B : memref<16xf32>
// CHECK-DAG: tessera.buffer constant @[[TWO:const[_0-9]*]] : memref<1xf32> {init = dense<2.000000e+00> : tensor<f32>
// CHECK-DAG: tessera.buffer output @loss : memref<1xf32> {name = "loss", shape = array<i64>}
// CHECK-DAG: tessera.buffer gradient @layers.0.mlp.lora_A.grad : memref<16xf32> {name = "layers.0.mlp.lora_A.grad", shape = array<i64: 2, 8>}
// CHECK-DAG: tessera.buffer gradient @layers.0.mlp.lora_B.grad : memref<16xf32>
// CHECK-DAG: tessera.buffer optimizer_state @layers.0.mlp.lora_A.exp_avg : memref<16xf32>
// CHECK-DAG: tessera.buffer optimizer_state @layers.0.mlp.lora_A.exp_avg_sq : memref<16xf32>
// CHECK-DAG: tessera.buffer optimizer_state @layers.0.mlp.lora_B.exp_avg : memref<16xf32>
// CHECK-DAG: tessera.buffer optimizer_state @layers.0.mlp.lora_B.exp_avg_sq : memref<16xf32>
// A reshape aliases its input's storage:
// CHECK-DAG: tessera.buffer activation @[[X2:train_step.v[0-9]+]] : memref<64xf32> {alias = @[[X:train_step.v[0-9]+]], name = "gather", shape = array<i64: 8, 8>}

// CHECK-LABEL: tessera.program @train_step {
// CHECK-NEXT: tessera.dispatch @[[GATHER:gather_0]] [@model.embed_tokens.weight, @input_ids, @[[X]]] workgroups [1, 1, 1]
// CHECK-NEXT: tessera.dispatch @[[LIN:matmul_0]] [@[[X]], @model.layers.0.mlp.weight, @{{.*}}]
// CHECK-NEXT: tessera.dispatch @matmul_1 [@[[X]], @layers.0.mlp.lora_A, @[[XA:train_step.v[0-9]+]]]
// CHECK-NEXT: tessera.dispatch @matmul_2 [@[[XA]], @layers.0.mlp.lora_B,
// CHECK-NEXT: tessera.dispatch @[[MULS:binary_mul_0]] [@{{.*}}, @[[TWO]], @{{.*}}]
// CHECK:      tessera.dispatch @ce_rows_0 [@[[LOGITS:train_step.v[0-9]+]], @labels, @[[ROWS:train_step.v[0-9]+.rows]]] workgroups [8, 1, 1]
// CHECK-NEXT: tessera.dispatch @ce_mean_0 [@[[ROWS]], @labels, @loss] workgroups [1, 1, 1]
// CHECK-NEXT: tessera.dispatch @ce_count_0 [@labels, @[[COUNT:train_step.v[0-9]+.count]]]
// CHECK-NEXT: tessera.dispatch @ce_grad_0 [@[[LOGITS]], @labels, @{{const[_0-9]*}}, @[[COUNT]], @{{.*}}] workgroups [8, 1, 1]
// Identical kernels (same op, attributes and types) are shared:
// CHECK:      tessera.dispatch @[[MULS]] [
// The gradients are computed straight into the gradient buffers:
// CHECK:      tessera.dispatch @matmul_5 [@{{.*}}, @{{.*}}, @layers.0.mlp.lora_B.grad]
// CHECK:      tessera.dispatch @matmul_7 [@{{.*}}, @[[X2]], @layers.0.mlp.lora_A.grad]
// AdamW binds param, grad, exp_avg, exp_avg_sq, hparams:
// CHECK-NEXT: tessera.dispatch @[[ADAMW:adamw_0]] [@layers.0.mlp.lora_A, @layers.0.mlp.lora_A.grad, @layers.0.mlp.lora_A.exp_avg, @layers.0.mlp.lora_A.exp_avg_sq, @hparams] workgroups [1, 1, 1]
// CHECK-NEXT: tessera.dispatch @[[ADAMW]] [@layers.0.mlp.lora_B, @layers.0.mlp.lora_B.grad, @layers.0.mlp.lora_B.exp_avg, @layers.0.mlp.lora_B.exp_avg_sq, @hparams]
// CHECK-NEXT: }

// @loss becomes @eval: same shared buffers and kernels, its own activations.
// CHECK-LABEL: tessera.program @eval {
// CHECK-NEXT: tessera.dispatch @[[GATHER]] [@model.embed_tokens.weight, @input_ids, @eval.v0]
// CHECK-NEXT: tessera.dispatch @[[LIN]] [@eval.v0, @model.layers.0.mlp.weight, @eval.v1]
// CHECK:      tessera.dispatch @ce_mean_0 [@eval.v{{[0-9]+}}.rows, @labels, @loss]
// CHECK-NEXT: }

// One gpu.module per kernel: flat memref args (operands, then results), the
// workgroup size from the profile, bounds-checked one thread per element.
// CHECK-LABEL: gpu.module @gather_0
// CHECK-SAME: spirv.target_env
// CHECK: gpu.func @gather_0(%[[TABLE:.*]]: memref<128xf32>, %[[IDS:.*]]: memref<8xi32>, %[[OUT:.*]]: memref<64xf32>) kernel attributes {spirv.entry_point_abi = #spirv.entry_point_abi<workgroup_size = [128, 1, 1]>}
// CHECK: gpu.thread_id x
// CHECK: gpu.block_id x
// CHECK: scf.if
// CHECK: memref.load %[[IDS]]
// CHECK: arith.minsi
// CHECK: memref.load %[[TABLE]]
// CHECK: memref.store {{.*}}, %[[OUT]]
// CHECK: gpu.return
