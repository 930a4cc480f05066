// Optimizer kernels follow each op's own config: two adapters of one size
// whose adamw_update configs differ (a tuned exact entry for one, the rules
// for the other) get their own grad_accumulate and adamw_accum kernels, not
// the first one's (the kernels' keys hold the workgroup size).
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels | FileCheck %s

module {
  func.func @train_step(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>, %hp: tensor<10xf32>) -> tensor<f32> attributes {tessera.role = #tessera<program_role accumulate>} {
    %a = tessera.param lora_a "m.lora_A" : tensor<2x3xf32>
    %x = tessera.param frozen "x" : tensor<2x3xf32>
    %ga = tessera.unary neg %x : tensor<2x3xf32>
    %l = tessera.reduce sum %a {axes = array<i64: 0, 1>, keepdims = false} : tensor<2x3xf32> -> tensor<f32>
    %gb = tessera.unary exp %x : tensor<2x3xf32>
    tessera.adamw_update "m.lora_A", %ga, %hp : tensor<2x3xf32>, tensor<10xf32>
    tessera.adamw_update "m.lora_B", %gb, %hp {tessera.kernel_config = #tessera.elementwise_config<workgroup_size = 64>} : tensor<2x3xf32>, tensor<10xf32>
    return %l : tensor<f32>
  }
}

// CHECK-LABEL: tessera.program @train_step {
// CHECK: tessera.dispatch @[[ACC_A:grad_accumulate_[0-9]+]] [@m.lora_A.grad_accum, @m.lora_A.grad, @hparams]
// CHECK-NEXT: tessera.dispatch @[[ACC_B:grad_accumulate_[0-9]+]] [@m.lora_B.grad_accum, @m.lora_B.grad, @hparams]
// CHECK-LABEL: tessera.program @optimizer_step {
// CHECK: tessera.dispatch @[[ADAM_A:adamw_accum_[0-9]+]] [@m.lora_A,
// CHECK: tessera.dispatch @[[ADAM_B:adamw_accum_[0-9]+]] [@m.lora_B,
// The default profile's 128 threads for m.lora_A, the injected 64 for m.lora_B.
// CHECK-DAG: gpu.func @[[ACC_A]]({{.*}}workgroup_size = [128, 1, 1]
// CHECK-DAG: gpu.func @[[ACC_B]]({{.*}}workgroup_size = [64, 1, 1]
// CHECK-DAG: gpu.func @[[ADAM_A]]({{.*}}workgroup_size = [128, 1, 1]
// CHECK-DAG: gpu.func @[[ADAM_B]]({{.*}}workgroup_size = [64, 1, 1]
