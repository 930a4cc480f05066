// RUN: not tessera-opt %s --split-input-file --tessera-append-loss 2>&1 | FileCheck %s

// CHECK: error: tessera-append-loss: the module has no @forward function
func.func @main(%ids: tensor<2x3xi32>) -> tensor<2x3xi32> {
  return %ids : tensor<2x3xi32>
}

// -----

// CHECK: error: tessera-append-loss: @forward must map input_ids tensor<...xi32> to logits tensor<...xVxf32> of the same leading shape, got '(tensor<2x3xi32>) -> tensor<3x5xf32>'
func.func @forward(%ids: tensor<2x3xi32>) -> tensor<3x5xf32> {
  %w = tessera.param frozen "w" : tensor<3x5xf32>
  return %w : tensor<3x5xf32>
}
