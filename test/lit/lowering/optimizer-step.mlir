// With role accumulate (10 hparams: max_grad_norm, grad_scale) train_step only accumulates
// each gradient (grad_accumulate) and a third program, optimizer_step, sums
// the squares of every accumulator into grad_norm, computes the clip
// coefficient once, then runs AdamW from the accumulators.
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels | FileCheck %s

module {
  func.func @train_step(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>, %hp: tensor<10xf32>) -> tensor<f32> attributes {tessera.role = #tessera<program_role accumulate>} {
    %a = tessera.param lora_a "m.lora_A" : tensor<2x3xf32>
    %x = tessera.param frozen "x" : tensor<2x3xf32>
    %ga = tessera.unary neg %x : tensor<2x3xf32>
    %l = tessera.reduce sum %a {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x3xf32> -> tensor<f32>
    %gb = tessera.unary exp %x : tensor<2x3xf32>
    tessera.adamw_update "m.lora_A", %ga, %hp : tensor<2x3xf32>, tensor<10xf32>
    tessera.adamw_update "m.lora_B", %gb, %hp : tensor<2x3xf32>, tensor<10xf32>
    return %l : tensor<f32>
  }
}

// CHECK-DAG: tessera.buffer hparams @hparams : memref<10xf32>
// CHECK-DAG: tessera.buffer gradient @m.lora_A.grad_accum : memref<6xf32> {name = "m.lora_A.grad_accum", shape = array<i64: 2, 3>}
// CHECK-DAG: tessera.buffer gradient @m.lora_B.grad_accum : memref<6xf32>
// CHECK-DAG: tessera.buffer output @grad_norm : memref<3xf32> {name = "grad_norm", shape = array<i64: 3>}

// CHECK-LABEL: tessera.program @train_step {
// CHECK-NEXT: tessera.dispatch @unary_neg_0 [@x, @m.lora_A.grad]
// CHECK-NEXT: tessera.dispatch @reduce_sum_0 [@m.lora_A, @loss]
// CHECK-NEXT: tessera.dispatch @unary_exp_0 [@x, @m.lora_B.grad]
// CHECK-NEXT: tessera.dispatch @[[ACC:grad_accumulate_0]] [@m.lora_A.grad_accum, @m.lora_A.grad, @hparams]
// CHECK-NEXT: tessera.dispatch @[[ACC]] [@m.lora_B.grad_accum, @m.lora_B.grad, @hparams]
// CHECK-NEXT: }
// CHECK-LABEL: tessera.program @optimizer_step {
// CHECK-NEXT: tessera.dispatch @[[SQ:grad_sumsq_0]] [@m.lora_A.grad_accum, @grad_norm]
// CHECK-NEXT: tessera.dispatch @[[SQ]] [@m.lora_B.grad_accum, @grad_norm]
// CHECK-NEXT: tessera.dispatch @clip_coef_0 [@grad_norm, @hparams]
// CHECK-NEXT: tessera.dispatch @[[ADAM:adamw_accum_0]] [@m.lora_A, @m.lora_A.grad_accum, @m.lora_A.exp_avg, @m.lora_A.exp_avg_sq, @hparams, @grad_norm]
// CHECK-NEXT: tessera.dispatch @[[ADAM]] [@m.lora_B, @m.lora_B.grad_accum, @m.lora_B.exp_avg, @m.lora_B.exp_avg_sq, @hparams, @grad_norm]
// CHECK-NEXT: }
