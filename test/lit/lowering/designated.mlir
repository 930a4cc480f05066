// Designated storage: the returned loss and the adamw gradients are computed
// in place, also through reshapes; when that is impossible (a parameter, a
// value used twice) a copy kernel moves them. Dead ops get no dispatch.
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels | FileCheck %s

module {
  func.func @train_step(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>, %hp: tensor<8xf32>) -> tensor<f32> {
    %a = tessera.param lora_a "m.lora_A" : tensor<2x3xf32>
    %b = tessera.param lora_b "m.lora_B" : tensor<3x2xf32>
    %x = tessera.param frozen "x" : tensor<1x2x3xf32>
    %dead = tessera.unary exp %x : tensor<1x2x3xf32>
    %ga = tessera.unary neg %x : tensor<1x2x3xf32>
    %ga2 = tessera.reshape %ga : tensor<1x2x3xf32> -> tensor<2x3xf32>
    %l = tessera.reduce sum %a {axes = array<i64: 0, 1>, keepdims = true} : tensor<2x3xf32> -> tensor<1x1xf32>
    %l2 = tessera.reshape %l : tensor<1x1xf32> -> tensor<f32>
    %gb = tessera.param frozen "gb" : tensor<3x2xf32>
    tessera.adamw_update "m.lora_A", %ga2, %hp : tensor<2x3xf32>, tensor<8xf32>
    tessera.adamw_update "m.lora_B", %gb, %hp : tensor<3x2xf32>, tensor<8xf32>
    return %l2 : tensor<f32>
  }
  func.func @loss(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>) -> tensor<f32> {
    %w = tessera.param frozen "w" : tensor<1xf32>
    %w2 = tessera.reshape %w : tensor<1xf32> -> tensor<f32>
    return %w2 : tensor<f32>
  }
}

// The storage owners of the reshaped gradient and loss are the designated
// buffers themselves; the reshapes alias them.
// CHECK-DAG: tessera.buffer gradient @m.lora_A.grad : memref<6xf32> {name = "m.lora_A.grad", shape = array<i64: 1, 2, 3>}
// CHECK-DAG: tessera.buffer gradient @{{m.lora_A.grad_[0-9]+}} : memref<6xf32> {alias = @m.lora_A.grad, name = "m.lora_A.grad", shape = array<i64: 2, 3>}
// CHECK-DAG: tessera.buffer output @loss : memref<1xf32> {name = "loss", shape = array<i64: 1, 1>}
// CHECK-DAG: tessera.buffer output @{{loss_[0-9]+}} : memref<1xf32> {alias = @loss, name = "loss", shape = array<i64>}
// CHECK-DAG: tessera.buffer gradient @m.lora_B.grad : memref<6xf32> {name = "m.lora_B.grad", shape = array<i64: 3, 2>}
// CHECK-DAG: tessera.buffer weight @gb : memref<6xf32>
// CHECK-DAG: tessera.buffer activation @[[W2:eval.v[0-9]+]] : memref<1xf32> {alias = @w, name = "w", shape = array<i64>}

// CHECK-LABEL: tessera.program @train_step {
// CHECK-NOT: unary_exp
// CHECK-NEXT: tessera.dispatch @unary_neg_0 [@x, @m.lora_A.grad]
// CHECK-NEXT: tessera.dispatch @reduce_sum_0 [@m.lora_A, @loss]
// CHECK-NEXT: tessera.dispatch @adamw_0 [@m.lora_A, @m.lora_A.grad, @m.lora_A.exp_avg, @m.lora_A.exp_avg_sq, @hparams]
// CHECK-NEXT: tessera.dispatch @[[COPY:copy_0]] [@gb, @m.lora_B.grad]
// CHECK-NEXT: tessera.dispatch @adamw_0 [@m.lora_B, @m.lora_B.grad, @m.lora_B.exp_avg, @m.lora_B.exp_avg_sq, @hparams]
// CHECK-NEXT: }
// CHECK-LABEL: tessera.program @eval {
// CHECK-NEXT: tessera.dispatch @{{copy_[0-9]+}} [@[[W2]], @loss]
// CHECK-NEXT: }
