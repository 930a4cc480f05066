// Verifiers of the raised ops.
// RUN: tessera-opt %s --split-input-file --verify-diagnostics

func.func @norm_weight(%x: tensor<2x4xf32>, %w: tensor<3xf32>) -> tensor<2x4xf32> {
  // expected-error @+1 {{weight [3] must be [N] for input [2,4] normalised over its last axis}}
  %y = tessera.rms_norm %x, %w {eps = 1.0e-6 : f64} : (tensor<2x4xf32>, tensor<3xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

func.func @rope_odd(%x: tensor<1x3x5xf32>, %c: tensor<3x5xf32>) -> tensor<1x3x5xf32> {
  // expected-error @+1 {{input [1,3,5] must be [..., T, D] with D even}}
  %y = tessera.rope %x, %c, %c : (tensor<1x3x5xf32>, tensor<3x5xf32>, tensor<3x5xf32>) -> tensor<1x3x5xf32>
  return %y : tensor<1x3x5xf32>
}

// -----

func.func @attention_groups(%q: tensor<1x4x3x8xf32>, %k: tensor<1x2x3x8xf32>) -> tensor<1x4x3x8xf32> {
  // expected-error @+1 {{do not fit kv_groups = 3}}
  %o = tessera.attention %q, %k, %k {scale = 1.0 : f64, kv_groups = 3 : i64} : (tensor<1x4x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>) -> tensor<1x4x3x8xf32>
  return %o : tensor<1x4x3x8xf32>
}

// -----

func.func @attention_mask(%q: tensor<1x2x3x8xf32>, %m: tensor<1x1x3x4xf32>) -> tensor<1x2x3x8xf32> {
  // expected-error @+1 {{mask [1,1,3,4] does not broadcast to scores [1,2,3,3]}}
  %o = tessera.attention %q, %q, %q mask %m {scale = 1.0 : f64, kv_groups = 1 : i64} : (tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>, tensor<1x1x3x4xf32>) -> tensor<1x2x3x8xf32>
  return %o : tensor<1x2x3x8xf32>
}

// -----

func.func @embedding_shape(%t: tensor<10x4xf32>, %ids: tensor<2x3xi32>) -> tensor<2x3x5xf32> {
  // expected-error @+1 {{result shape must be [2,3,4]}}
  %e = tessera.embedding %t[%ids] : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<2x3x5xf32>
  return %e : tensor<2x3x5xf32>
}

// -----

func.func @ternary_weight_rank(%w: tensor<2x4x8xf32>) -> tensor<2x4x8xf32> {
  // expected-error @+1 {{weight [2,4,8] must be a rank-2 [out, in] linear weight}}
  %t = tessera.ternary_weight %w : tensor<2x4x8xf32>
  return %t : tensor<2x4x8xf32>
}

// -----

func.func @ternary_weight_eps(%w: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{eps must be > 0}}
  %t = tessera.ternary_weight %w {eps = -1.0 : f64} : tensor<4x8xf32>
  return %t : tensor<4x8xf32>
}
