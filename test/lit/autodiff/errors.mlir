// RUN: tessera-opt %s --split-input-file --verify-diagnostics --tessera-autodiff

// A LoRA param flowing into a gather table.
func.func @loss(%ids: tensor<3xi32>) -> tensor<f32> {
  %t = tessera.param lora_a "table" : tensor<5x2xf32>
  // expected-error @+1 {{a LoRA parameter flows into the table of this gather}}
  %g = tessera.gather %t[%ids] {axis = 0 : i64} : (tensor<5x2xf32>, tensor<3xi32>) -> tensor<3x2xf32>
  %l = tessera.reduce sum %g {axes = array<i64: 0, 1>} : tensor<3x2xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// An op without a gradient rule between a LoRA param and the loss.
func.func @loss(%labels: tensor<1x2xi32>) -> tensor<f32> {
  %x = tessera.param lora_a "x" : tensor<1x2x3xf32>
  %d = tessera.constant dense<1.0> : tensor<f32>
  // expected-error @+1 {{no gradient rule for 'tessera.cross_entropy_grad', which lies between a LoRA parameter and the loss}}
  %g = tessera.cross_entropy_grad %x, %labels, %d : (tensor<1x2x3xf32>, tensor<1x2xi32>, tensor<f32>) -> tensor<1x2x3xf32>
  %l = tessera.reduce sum %g {axes = array<i64: 0, 1, 2>} : tensor<1x2x3xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// expected-error @+1 {{tessera-autodiff: @loss must have a single-block body returning one tensor<f32>}}
func.func @loss() -> tensor<2xf32> {
  %x = tessera.param lora_a "x" : tensor<2xf32>
  return %x : tensor<2xf32>
}
