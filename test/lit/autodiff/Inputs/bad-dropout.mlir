func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %d = tessera.dropout %x {rate = 1.5 : f64, site = 0 : i64} : tensor<4xf32>
  return %d : tensor<4xf32>
}
