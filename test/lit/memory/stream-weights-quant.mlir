// tessera-stream-weights on a block-quantised weight (tessera.quant): it streams as its 32-bit words; the copy
// is an activation of the same blocks (the same tessera.quant, the same words) that the dequantising matmul reads.
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels --tessera-stream-weights=prefetch=0 | FileCheck %s

// CHECK: tessera.streamed_weights = {copies = 2 : i64, weights = 2 : i64}
// CHECK-DAG: tessera.buffer activation @eval.wq.stream0 : memref<544xi32> {name = "wq.streamed", shape = array<i64: 32, 64>, tessera.quant = "q8_0"}
// CHECK-DAG: tessera.buffer weight @wq : memref<544xi32> {name = "wq", shape = array<i64: 32, 64>, tessera.host_resident, tessera.quant = "q8_0"}
// CHECK: tessera.dispatch @{{copy_[0-9]+}} [@wq, @eval.wq.stream0] workgroups [5, 1, 1] {tessera.stream = "wq.streamed"}
// CHECK: tessera.dispatch @matmul_0 [@eval.x.stream0, @eval.wq.stream0, @eval.v0]
module {
  func.func @loss(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<4x64xf32>
    %w = tessera.param frozen "wq" {tessera.quant = "q8_0"} : tensor<32x64xf32>
    %y = tessera.matmul %x, %w {transpose_rhs = true} : (tensor<4x64xf32>, tensor<32x64xf32>) -> tensor<4x32xf32> loc("y")
    %l = tessera.reduce sum %y {axes = array<i64: 0, 1>} : tensor<4x32xf32> -> tensor<f32>
    return %l : tensor<f32>
  }
}
