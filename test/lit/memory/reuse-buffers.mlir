// tessera-reuse-buffers: activations whose dispatch intervals do not overlap
// share one slot buffer (they become its aliases); an operand and the result
// of the same dispatch never share; weights, the loss and gradients keep their
// own storage; the two programs share slots (they never run together).
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels --tessera-reuse-buffers | FileCheck %s
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels | FileCheck %s --check-prefix=UNSHARED

// eval: x -> a = exp(x) [dispatch 0] -> b = neg(a) [1] -> c = exp(b) [2] -> d = neg(c) [3] -> reduce [4].
// a and c (and b and d) never live at the same time; a and b do. Six 24-byte
// activations (144 bytes) fit in two slots (48 bytes, also the largest live set).
// CHECK: module attributes {{.*}}tessera.memory = {activation_slots = 2 : i64, activations_live_peak = 48 : i64, activations_shared = 48 : i64, activations_unshared = 144 : i64}}
// CHECK-DAG: tessera.buffer activation @[[SLOT0:activation.slot[0-9]+]] : memref<6xf32> {name = "activation.slot{{[0-9]+}}", shape = array<i64: 6>}
// CHECK-DAG: tessera.buffer activation @[[SLOT1:activation.slot[0-9]+]] : memref<6xf32> {name = "activation.slot{{[0-9]+}}", shape = array<i64: 6>}
// CHECK-DAG: tessera.buffer weight @x : memref<6xf32> {name = "x", shape = array<i64: 2, 3>}
// CHECK-DAG: tessera.buffer output @loss : memref<1xf32>
// CHECK-DAG: tessera.buffer activation @eval.v0 : memref<6xf32> {alias = @[[A:activation.slot[0-9]+]], name = "a"
// CHECK-DAG: tessera.buffer activation @eval.v1 : memref<6xf32> {alias = @[[B:activation.slot[0-9]+]], name = "b"
// CHECK-DAG: tessera.buffer activation @eval.v2 : memref<6xf32> {alias = @[[A]], name = "c"
// CHECK-DAG: tessera.buffer activation @eval.v3 : memref<6xf32> {alias = @[[B]], name = "d"
// Each program's values use the same two slots.
// CHECK-DAG: tessera.buffer activation @train_step.v0 : memref<6xf32> {alias = @activation.slot
// Without the pass every value owns its buffer.
// UNSHARED-NOT: alias = @activation.slot
// UNSHARED-NOT: tessera.memory
module {
  func.func @train_step(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>, %hp: tensor<8xf32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<2x3xf32>
    %a = tessera.unary exp %x : tensor<2x3xf32> loc("a")
    %b = tessera.unary neg %a : tensor<2x3xf32> loc("b")
    %l = tessera.reduce sum %b {axes = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<f32>
    %p = tessera.param lora_a "m.lora_A" : tensor<2x3xf32>
    %g = tessera.binary mul %b, %p : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    tessera.adamw_update "m.lora_A", %g, %hp : tensor<2x3xf32>, tensor<8xf32>
    return %l : tensor<f32>
  }
  func.func @loss(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<2x3xf32>
    %a = tessera.unary exp %x : tensor<2x3xf32> loc("a")
    %b = tessera.unary neg %a : tensor<2x3xf32> loc("b")
    %c = tessera.unary exp %b : tensor<2x3xf32> loc("c")
    %d = tessera.unary neg %c : tensor<2x3xf32> loc("d")
    %l = tessera.reduce sum %d {axes = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<f32>
    return %l : tensor<f32>
  }
}
