// tessera-split-large-tensors refuses what it cannot tile, naming the weight,
// its size and the limit.
// RUN: tessera-opt %s --split-input-file --tessera-split-large-tensors="max-bytes=64" -verify-diagnostics

// A use that has no tiled form is refused with the weight, its size and the limit.
func.func @other_use(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
  %w = tessera.param frozen "w" : tensor<8x4xf32>
  // expected-error @+1 {{weight 'w' (128 bytes) is larger than the device's buffer limit (max_buffer_bytes 64 bytes) and this use of it (tessera.binary) cannot be split into row tiles}}
  %y = tessera.binary add %x, %w : (tensor<8x4xf32>, tensor<8x4xf32>) -> tensor<8x4xf32>
  return %y : tensor<8x4xf32>
}

// -----

// One row over the limit cannot be split by rows.
func.func @wide_row(%ids: tensor<2xi32>) -> tensor<2x32xf32> {
  // expected-error @+1 {{weight 'wide' (256 bytes) is larger than the device's buffer limit (max_buffer_bytes 64 bytes) and one of its 2 rows alone (128 bytes) exceeds it}}
  %w = tessera.param frozen "wide" : tensor<2x32xf32>
  %y = tessera.gather %w[%ids] {axis = 0 : i64} : (tensor<2x32xf32>, tensor<2xi32>) -> tensor<2x32xf32>
  return %y : tensor<2x32xf32>
}
