// tessera-stream-weights: a frozen weight stays in host memory (tessera.host_resident); each run of the
// dispatches that read it, neighbours at most max-gap dispatches apart, reads an activation copy made by a
// copy dispatch `prefetch` dispatches before the run (0: just before it); tessera-reuse-buffers then packs the
// copies like other activations, each live from its copy on.
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels --tessera-stream-weights=prefetch=0 | FileCheck %s
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels --tessera-stream-weights="max-gap=1 min-bytes=16 prefetch=0" --tessera-reuse-buffers | FileCheck %s --check-prefix=GAP
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels --tessera-stream-weights="max-gap=1 min-bytes=16 prefetch=2" --tessera-reuse-buffers | FileCheck %s --check-prefix=AHEAD
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels --tessera-stream-weights | FileCheck %s --check-prefix=DEFAULT
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels --tessera-stream-weights="percent=70 prefetch=0" | FileCheck %s --check-prefix=PART
// RUN: tessera-opt %s --tessera-select-kernel-configs --tessera-lower-to-kernels --tessera-stream-weights="percent=30" | FileCheck %s --check-prefix=NONE

// max-gap 64, every weight: w's two uses share one copy, norm gets its own.
// CHECK: tessera.streamed_weights = {copies = 2 : i64, weights = 2 : i64}
// CHECK-DAG: tessera.buffer weight @w : memref<6xf32> {name = "w", shape = array<i64: 2, 3>, tessera.host_resident}
// CHECK-DAG: tessera.buffer weight @norm : memref<3xf32> {name = "norm", shape = array<i64: 3>, tessera.host_resident}
// CHECK-DAG: tessera.buffer activation @eval.w.stream0 : memref<6xf32> {name = "w.streamed", shape = array<i64: 2, 3>}
// CHECK:      tessera.dispatch @[[COPYW:copy_[0-9]+]] [@w, @eval.w.stream0] workgroups [1, 1, 1] {tessera.stream = "w.streamed"}
// CHECK-NEXT: tessera.dispatch @unary_exp_0 [@eval.w.stream0, @eval.v0]
// CHECK:      tessera.dispatch @binary_mul_0 [@eval.v2, @eval.w.stream0, @eval.v3]
// CHECK-NEXT: tessera.dispatch @{{copy_[0-9]+}} [@norm, @eval.norm.stream0] {{.*}} {tessera.stream = "norm.streamed"}
// CHECK-NEXT: tessera.dispatch @binary_add_0 [@eval.v3, @eval.norm.stream0, @eval.v4]
// No dispatch reads a host-resident weight except the copies.
// CHECK-NOT: tessera.dispatch @{{(unary|binary|reduce)}}{{.*}}[@w,

// max-gap 1: w's uses three dispatches apart get two copies; norm (12 bytes) is under min-bytes and stays.
// The copies are activations: reuse puts both into one slot.
// GAP: tessera.streamed_weights = {copies = 2 : i64, weights = 1 : i64}
// GAP-DAG: tessera.buffer activation @eval.w.stream0 : memref<6xf32> {alias = @[[SLOT:activation.slot[0-9]+]], name = "w.streamed"
// GAP-DAG: tessera.buffer activation @eval.w.stream1 : memref<6xf32> {alias = @[[SLOT]], name = "w.streamed"
// GAP-DAG: tessera.buffer weight @norm : memref<3xf32> {name = "norm", shape = array<i64: 3>}
// GAP:      tessera.dispatch @{{copy_[0-9]+}} [@w, @eval.w.stream0] workgroups [1, 1, 1] {tessera.stream = "w.streamed"}
// GAP-NEXT: tessera.dispatch @unary_exp_0 [@eval.w.stream0, @eval.v0]
// GAP:      tessera.dispatch @{{copy_[0-9]+}} [@w, @eval.w.stream1] workgroups [1, 1, 1] {tessera.stream = "w.streamed"}
// GAP-NEXT: tessera.dispatch @binary_mul_0 [@eval.v2, @eval.w.stream1, @eval.v3]
// GAP-NEXT: tessera.dispatch @binary_add_0 [@eval.v3, @norm, @eval.v4]

// prefetch 2: each copy two dispatches ahead of its run (the first at the program's start).
// AHEAD:      tessera.dispatch @{{copy_[0-9]+}} [@w, @[[S0:eval.w.stream0|activation.slot[0-9]+]]] workgroups [1, 1, 1] {tessera.stream = "w.streamed"}
// AHEAD-NEXT: tessera.dispatch @unary_exp_0 [@[[S0]],
// AHEAD-NEXT: tessera.dispatch @{{copy_[0-9]+}} [@w, @[[S1:eval.w.stream1|activation.slot[0-9]+]]] workgroups [1, 1, 1] {tessera.stream = "w.streamed"}
// AHEAD-NEXT: tessera.dispatch @unary_neg_0
// AHEAD-NEXT: tessera.dispatch @unary_exp_0
// AHEAD-NEXT: tessera.dispatch @binary_mul_0 [@eval.v2, @[[S1]], @eval.v3]

// The default prefetch (32) puts both copies at the program's start.
// DEFAULT:      tessera.program @eval
// DEFAULT-NEXT: tessera.dispatch @{{copy_[0-9]+}} [@norm,
// DEFAULT-NEXT: tessera.dispatch @{{copy_[0-9]+}} [@w,
// DEFAULT-NEXT: tessera.dispatch @unary_exp_0
// percent 70 of the 36 streamable bytes (25): the weight whose copy lives shortest first. norm's one use
// (a run of 1 dispatch, 12 bytes) fits; w's run spans 4 dispatches and its 24 bytes no longer fit.
// PART: tessera.streamed_weights = {copies = 1 : i64, weights = 1 : i64}
// PART-DAG: tessera.buffer weight @w : memref<6xf32> {name = "w", shape = array<i64: 2, 3>}
// PART-DAG: tessera.buffer weight @norm : memref<3xf32> {name = "norm", shape = array<i64: 3>, tessera.host_resident}
// PART:      tessera.dispatch @binary_mul_0 [@eval.v2, @w, @eval.v3]
// PART-NEXT: tessera.dispatch @{{copy_[0-9]+}} [@norm, @eval.norm.stream0]
// PART-NEXT: tessera.dispatch @binary_add_0 [@eval.v3, @eval.norm.stream0, @eval.v4]

// percent 30 (10 bytes): no weight fits, nothing is streamed.
// NONE-NOT: tessera.streamed_weights
// NONE-NOT: tessera.host_resident
// NONE-NOT: tessera.stream =

module {
  func.func @loss(%ids: tensor<1x4xi32>, %labels: tensor<1x4xi32>) -> tensor<f32> {
    %w = tessera.param frozen "w" : tensor<2x3xf32>
    %n = tessera.param frozen "norm" : tensor<3xf32>
    %a = tessera.unary exp %w : tensor<2x3xf32> loc("a")
    %b = tessera.unary neg %a : tensor<2x3xf32> loc("b")
    %c = tessera.unary exp %b : tensor<2x3xf32> loc("c")
    %d = tessera.binary mul %c, %w : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32> loc("d")
    %e = tessera.binary add %d, %n : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32> loc("e")
    %l = tessera.reduce sum %e {axes = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<f32>
    return %l : tensor<f32>
  }
}
