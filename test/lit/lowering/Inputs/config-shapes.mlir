// Typical kernel shapes of a bf16 training step (Qwen3-0.6B-like: hidden
// 1024, MLP 3072, 8 heads of 64, vocabulary 151936, 4 x 128 tokens, LoRA
// rank 16 and 64), for the config-*.mlir tests. The last two ops carry an
// injected config, which the pass must keep.
module {
  func.func @train_step(%ids: tensor<4x128xi32>, %labels: tensor<4x128xi32>, %hp: tensor<10xf32>) -> tensor<f32> {
    %x = tessera.param frozen "x" : tensor<4x128x1024xbf16>
    %w = tessera.param frozen "w" : tensor<3072x1024xbf16>
    // linear layer: M = 512 (batch folded), N = 3072, K = 1024
    %up = tessera.matmul %x, %w {transpose_rhs = true} : (tensor<4x128x1024xbf16>, tensor<3072x1024xbf16>) -> tensor<4x128x3072xbf16>
    // LoRA down projections: N = rank (16, 64), K = 1024
    %a = tessera.param lora_a "m.lora_A" : tensor<16x1024xf32>
    %down = tessera.matmul %x, %a {transpose_rhs = true} : (tensor<4x128x1024xbf16>, tensor<16x1024xf32>) -> tensor<4x128x16xbf16>
    %a64 = tessera.param lora_a "n.lora_A" : tensor<64x1024xf32>
    %down64 = tessera.matmul %x, %a64 {transpose_rhs = true} : (tensor<4x128x1024xbf16>, tensor<64x1024xf32>) -> tensor<4x128x64xbf16>
    // LoRA A gradient: M = rank 16, N = 1024, K = 512 tokens
    %xr = tessera.reshape %x : tensor<4x128x1024xbf16> -> tensor<512x1024xbf16>
    %dr = tessera.reshape %down : tensor<4x128x16xbf16> -> tensor<512x16xbf16>
    %ga = tessera.matmul %dr, %xr {transpose_lhs = true} : (tensor<512x16xbf16>, tensor<512x1024xbf16>) -> tensor<16x1024xf32>
    // attention scores: 4 x 8 heads of 128 x 128, K = head dim 64
    %q = tessera.param frozen "q" : tensor<4x8x128x64xbf16>
    %s = tessera.matmul %q, %q {transpose_rhs = true} : (tensor<4x8x128x64xbf16>, tensor<4x8x128x64xbf16>) -> tensor<4x8x128x128xf32>
    // a long K: M = 512, N = 1024, K = 4096
    %h4 = tessera.param frozen "h4" : tensor<512x4096xbf16>
    %w4 = tessera.param frozen "w4" : tensor<1024x4096xbf16>
    %y4 = tessera.matmul %h4, %w4 {transpose_rhs = true} : (tensor<512x4096xbf16>, tensor<1024x4096xbf16>) -> tensor<512x1024xbf16>
    // softmax rows of 128 and of 16
    %p = tessera.softmax %s : tensor<4x8x128x128xf32> -> tensor<4x8x128x128xbf16>
    %sh = tessera.param frozen "sh" : tensor<4x8x128x16xf32>
    %ph = tessera.softmax %sh : tensor<4x8x128x16xf32> -> tensor<4x8x128x16xbf16>
    // fused attention: the heads of %q against 4 key/value heads, causal mask
    %kk = tessera.param frozen "kk" : tensor<4x4x128x64xbf16>
    %cm = tessera.param frozen "cm" : tensor<128x128xf32>
    %fa:2 = tessera.flash_attention %q, %kk, %kk mask %cm {scale = 0.125 : f64, kv_groups = 2 : i64} : (tensor<4x8x128x64xbf16>, tensor<4x4x128x64xbf16>, tensor<4x4x128x64xbf16>, tensor<128x128xf32>) -> (tensor<4x8x128x64xbf16>, tensor<4x8x128xf32>)
    %fg:3 = tessera.flash_attention_grad %q, %kk, %kk, %fa#0, %fa#1, %q mask %cm {scale = 0.125 : f64, kv_groups = 2 : i64} : (tensor<4x8x128x64xbf16>, tensor<4x4x128x64xbf16>, tensor<4x4x128x64xbf16>, tensor<4x8x128x64xbf16>, tensor<4x8x128xf32>, tensor<4x8x128x64xbf16>, tensor<128x128xf32>) -> (tensor<4x8x128x64xbf16>, tensor<4x4x128x64xbf16>, tensor<4x4x128x64xbf16>)
    // embedding lookup, RMSNorm statistics (innermost 1024), a column sum
    // (1024 outputs of 512), a short row (extent 16)
    %emb = tessera.param frozen "emb" : tensor<151936x1024xbf16>
    %h = tessera.gather %emb[%ids] {axis = 0 : i64} : (tensor<151936x1024xbf16>, tensor<4x128xi32>) -> tensor<4x128x1024xf32>
    %sq = tessera.binary mul %h, %h : (tensor<4x128x1024xf32>, tensor<4x128x1024xf32>) -> tensor<4x128x1024xf32>
    %ms = tessera.reduce mean %sq {axes = array<i64: 2>, keepdims = true} : tensor<4x128x1024xf32> -> tensor<4x128x1xf32>
    %cs = tessera.reduce sum %h {axes = array<i64: 0, 1>} : tensor<4x128x1024xf32> -> tensor<1024xf32>
    %rs = tessera.reduce max %sh {axes = array<i64: 3>} : tensor<4x8x128x16xf32> -> tensor<4x8x128xf32>
    %t = tessera.transpose %q [0, 2, 1, 3] : tensor<4x8x128x64xbf16> -> tensor<4x128x8x64xbf16>
    // the loss, its gradient, and the gradient against the embedding (K = vocabulary)
    %lg = tessera.param frozen "lg" : tensor<4x128x151936xf32>
    %l = tessera.cross_entropy %lg, %labels : (tensor<4x128x151936xf32>, tensor<4x128xi32>) -> tensor<f32>
    %one = tessera.constant dense<1.0> : tensor<f32>
    %dlg = tessera.cross_entropy_grad %lg, %labels, %one : (tensor<4x128x151936xf32>, tensor<4x128xi32>, tensor<f32>) -> tensor<4x128x151936xbf16>
    %dh = tessera.matmul %dlg, %emb : (tensor<4x128x151936xbf16>, tensor<151936x1024xbf16>) -> tensor<4x128x1024xbf16>
    tessera.adamw_update "m.lora_A", %ga, %hp : tensor<16x1024xf32>, tensor<10xf32>
    // injected configs
    %inj = tessera.matmul %x, %w {transpose_rhs = true, tessera.kernel_config = #tessera.matmul_config<variant = "", kind = direct, tile = [8, 8, 8], thread = [2, 2], split_k = 2>} : (tensor<4x128x1024xbf16>, tensor<3072x1024xbf16>) -> tensor<4x128x3072xbf16>
    %injr = tessera.reduce sum %sq {axes = array<i64: 2>, tessera.kernel_config = #tessera.reduction_config<strategy = serial, workgroup_size = 32>} : tensor<4x128x1024xf32> -> tensor<4x128xf32>
    return %l : tensor<f32>
  }
}
