// tessera.dropout: a kernel that binds @hparams (the seed, hparams[10]) in
// train_step, no kernel in eval (its result is its input's buffer), and an
// error when train_step's hparams have no seed slot.
// RUN: tessera-opt %s --split-input-file --tessera-select-kernel-configs --tessera-lower-to-kernels --verify-diagnostics | FileCheck %s

// CHECK-LABEL: tessera.program @train_step
// CHECK: tessera.dispatch @dropout_0 [@[[X:[a-z0-9_.]+]], @[[D:[a-z0-9_.]+]], @hparams]
// CHECK: tessera.dispatch @reduce_sum_0 [@[[D]], @loss]
// CHECK-LABEL: tessera.program @eval
// CHECK-NOT: @dropout_
// CHECK: tessera.dispatch @reduce_sum_0 [@[[X]], @loss]
// CHECK-NOT: @dropout_
// CHECK: }
module {
  func.func @train_step(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>, %hp: tensor<11xf32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<4x8xf32>
    %d = tessera.dropout %x {rate = 0.5 : f64, site = 1 : i64} : tensor<4x8xf32>
    %s = tessera.reduce sum %d {axes = array<i64: 0, 1>} : tensor<4x8xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
  func.func @loss(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<4x8xf32>
    %d = tessera.dropout %x {rate = 0.5 : f64, site = 1 : i64} : tensor<4x8xf32>
    %s = tessera.reduce sum %d {axes = array<i64: 0, 1>} : tensor<4x8xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
}

// -----

module {
  func.func @train_step(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>, %hp: tensor<10xf32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<4x8xf32>
    // expected-error @+1 {{needs the dropout seed in hparams[10] (11 training hparams), got 10 values}}
    %d = tessera.dropout %x {rate = 0.5 : f64, site = 1 : i64} : tensor<4x8xf32>
    %s = tessera.reduce sum %d {axes = array<i64: 0, 1>} : tensor<4x8xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
}
