// A fused_matmul's epilogue (alpha * A B + D, one rounding) on cooperative
// matrices: on the tiles inside C it runs on fragments (alpha as a constant
// matrix, the addend's tile loaded as an accumulator fragment and widened to
// f32, added, then converted to C's type and stored); rows of C or D that are
// not 16-byte aligned keep every tile on the scratch-fragment path, the addend
// read element by element (bf16 bits in a bf16 kernel's f16 binding).
// The subgroup kernel's epilogue: nvidia.json without its workgroup-scope variant.
// RUN: %python -c "import json,sys; p=json.load(open(sys.argv[1])); p['matmul']['variants']=[v for v in p['matmul']['variants'] if v.get('scope') != 'workgroup']; json.dump(p, open(sys.argv[2], 'w'))" %repo/autotune/profiles/nvidia.json %t.json
// RUN: tessera-opt %s --tessera-select-kernel-configs=profile=%t.json --tessera-lower-to-kernels | FileCheck %s --check-prefix=KERNEL
// RUN: rm -rf %t && tessera-opt %s --tessera-select-kernel-configs=profile=%t.json --tessera-lower-to-kernels --tessera-kernels-to-spirv=dump-dir=%t | FileCheck %s --check-prefix=SPIRV
// RUN: %python %S/Inputs/spirv_bf16_check.py %t | FileCheck %s --check-prefix=BINARY

// bf16, whole tiles: no scratch fragment, the addend (a bf16 binding typed f16) loaded as fragments.
// KERNEL-LABEL: gpu.func @matmul_coopmat_0(
// KERNEL-SAME: %{{[a-z0-9]+}}: memref<32768xvector<4xi32>>, %{{[a-z0-9]+}}: memref<32768xvector<4xi32>>, %[[D:[a-z0-9]+]]: memref<262144xf16>, %[[C:[a-z0-9]+]]: memref<262144xf16>)
// KERNEL-DAG: %[[HALF:[a-z0-9_]+]] = arith.constant 5.000000e-01 : f32
// KERNEL-DAG: arith.constant 6.553700e+04 : f32
// KERNEL-NOT: memref<{{[0-9]+}}xf32, #gpu.address_space<workgroup>>
// KERNEL: %[[ALPHA:[0-9]+]] = gpu.subgroup_mma_constant_matrix %[[HALF]] : !gpu.mma_matrix<16x16xf32, "COp">
// KERNEL-NEXT: %[[S:[0-9]+]] = gpu.subgroup_mma_elementwise mulf %{{.*}}, %[[ALPHA]]
// KERNEL-NEXT: %[[DF:[0-9]+]] = gpu.subgroup_mma_load_matrix %[[D]][%[[AT:[0-9]+]]] {leadDimension = 512 : index} : memref<262144xf16> -> !gpu.mma_matrix<16x16xf16, "COp">
// KERNEL-NEXT: %[[DW:[0-9]+]] = gpu.subgroup_mma_elementwise extf %[[DF]] : (!gpu.mma_matrix<16x16xf16, "COp">) -> !gpu.mma_matrix<16x16xf32, "COp">
// KERNEL-NEXT: %[[SUM:[0-9]+]] = gpu.subgroup_mma_elementwise addf %[[S]], %[[DW]]
// Rounded to the bf16 grid in f32 (Veltkamp: c = x (2^16 + 1), hi = c - (c - x)) before the conversion.
// KERNEL-NEXT: %[[SPLIT:[0-9]+]] = gpu.subgroup_mma_constant_matrix %{{.*}} : !gpu.mma_matrix<16x16xf32, "COp">
// KERNEL-NEXT: %[[CC:[0-9]+]] = gpu.subgroup_mma_elementwise mulf %[[SUM]], %[[SPLIT]]
// KERNEL-NEXT: %[[LO:[0-9]+]] = gpu.subgroup_mma_elementwise subf %[[CC]], %[[SUM]]
// KERNEL-NEXT: %[[HI:[0-9]+]] = gpu.subgroup_mma_elementwise subf %[[CC]], %[[LO]]
// KERNEL-NEXT: %[[OUT:[0-9]+]] = gpu.subgroup_mma_elementwise extf %[[HI]] : (!gpu.mma_matrix<16x16xf32, "COp">) -> !gpu.mma_matrix<16x16xf16, "COp">
// KERNEL-NEXT: gpu.subgroup_mma_store_matrix %[[OUT]], %[[C]][%[[AT]]] {leadDimension = 512 : index}
// KERNEL-NOT: memref.load %[[D]]
// KERNEL: gpu.return

// f16 operands, f32 C, alpha only: the scaled fragments stored as they are.
// KERNEL-LABEL: gpu.func @matmul_coopmat_1(
// KERNEL-SAME: %{{[a-z0-9]+}}: memref<8192xvector<4xi32>>, %{{[a-z0-9]+}}: memref<8192xvector<4xi32>>, %[[C1:[a-z0-9]+]]: memref<262144xf32>)
// KERNEL-NOT: memref<{{[0-9]+}}xf32, #gpu.address_space<workgroup>>
// KERNEL: %[[S1:[0-9]+]] = gpu.subgroup_mma_elementwise mulf
// KERNEL-NOT: gpu.subgroup_mma_elementwise
// KERNEL: gpu.subgroup_mma_store_matrix %[[S1]], %[[C1]][%{{[0-9]+}}] {leadDimension = 256 : index}
// KERNEL: gpu.return

// N = 100: bf16 rows of 200 bytes, so every tile takes the scratch path.
// KERNEL-LABEL: gpu.func @matmul_coopmat_2(
// KERNEL-SAME: %{{[a-z0-9]+}}: memref<262144xvector<4xi32>>, %{{[a-z0-9]+}}: memref<6400xvector<4xi32>>, %[[D2:[a-z0-9]+]]: memref<409600xf16>, %[[C2:[a-z0-9]+]]: memref<409600xf16>)
// KERNEL-NOT: gpu.subgroup_mma_load_matrix %[[D2]]
// KERNEL-NOT: gpu.subgroup_mma_store_matrix %{{[0-9]+}}, %[[C2]]
// KERNEL: memref.load %[[D2]]
// KERNEL-NEXT: arith.bitcast %{{[0-9]+}} : f16 to i16
// KERNEL-NOT: gpu.subgroup_mma_load_matrix %[[D2]]
// KERNEL-NOT: gpu.subgroup_mma_store_matrix %{{[0-9]+}}, %[[C2]]
// KERNEL: gpu.return

// The same in SPIR-V: the scale as OpMatrixTimesScalar, the addend as a cooperative load widened by FConvert.
// SPIRV-LABEL: spirv.module @matmul_coopmat_0
// SPIRV: spirv.MatrixTimesScalar %{{.*}}, %{{.*}} {no_contraction} : !spirv.coopmatrix<16x16xf32, Subgroup, MatrixAcc>, f32
// SPIRV: spirv.KHR.CooperativeMatrixLoad %{{.*}}, %{{.*}}, <RowMajor> : !spirv.ptr<f16, StorageBuffer>, i32 -> !spirv.coopmatrix<16x16xf16, Subgroup, MatrixAcc>
// SPIRV-NEXT: spirv.FConvert %{{.*}} : !spirv.coopmatrix<16x16xf16, Subgroup, MatrixAcc> to !spirv.coopmatrix<16x16xf32, Subgroup, MatrixAcc>
// SPIRV-NEXT: spirv.FAdd %{{.*}}, %{{.*}} {no_contraction} : !spirv.coopmatrix<16x16xf32, Subgroup, MatrixAcc>
// SPIRV: spirv.FSub %{{.*}}, %{{.*}} {no_contraction} : !spirv.coopmatrix<16x16xf32, Subgroup, MatrixAcc>
// SPIRV-NEXT: spirv.FSub %{{.*}}, %{{.*}} {no_contraction} : !spirv.coopmatrix<16x16xf32, Subgroup, MatrixAcc>
// SPIRV-NEXT: spirv.FConvert %{{.*}} : !spirv.coopmatrix<16x16xf32, Subgroup, MatrixAcc> to !spirv.coopmatrix<16x16xf16, Subgroup, MatrixAcc>

// BINARY: matmul_coopmat_0.spv: bf16 types 1, f16 types 0, capabilities BFloat16CooperativeMatrixKHR BFloat16TypeKHR CooperativeMatrixKHR, extension SPV_KHR_bfloat16, NoContraction 80
// BINARY: matmul_coopmat_1.spv: bf16 types 0, f16 types 1, capabilities CooperativeMatrixKHR
// BINARY: matmul_coopmat_2.spv: bf16 types 1, f16 types 0, capabilities BFloat16CooperativeMatrixKHR BFloat16TypeKHR CooperativeMatrixKHR, extension SPV_KHR_bfloat16

module {
  func.func @loss(%ids: tensor<1x2xi32>, %labels: tensor<1x2xi32>) -> tensor<f32> {
    %a = tessera.param frozen "a" : tensor<512x512xbf16>
    %w = tessera.param frozen "w" : tensor<512x512xbf16>
    %d = tessera.param frozen "d" : tensor<512x512xbf16>
    %c = tessera.fused_matmul %a, %w plus %d {alpha = 5.000000e-01 : f64, transpose_rhs = true} : (tensor<512x512xbf16>, tensor<512x512xbf16>), tensor<512x512xbf16> -> tensor<512x512xbf16>
    %q = tessera.param frozen "q" : tensor<4x256x64xf16>
    %k = tessera.param frozen "k" : tensor<4x64x256xf16>
    %s = tessera.fused_matmul %q, %k {alpha = 1.250000e-01 : f64} : (tensor<4x256x64xf16>, tensor<4x64x256xf16>) -> tensor<4x256x256xf32>
    %x = tessera.param frozen "x" : tensor<4096x512xbf16>
    %y = tessera.param frozen "y" : tensor<100x512xbf16>
    %e = tessera.param frozen "e" : tensor<4096x100xbf16>
    %u = tessera.fused_matmul %x, %y plus %e {transpose_rhs = true} : (tensor<4096x512xbf16>, tensor<100x512xbf16>), tensor<4096x100xbf16> -> tensor<4096x100xbf16>
    %r0 = tessera.reduce sum %c {axes = array<i64: 0, 1>} : tensor<512x512xbf16> -> tensor<f32>
    %r1 = tessera.reduce sum %s {axes = array<i64: 0, 1, 2>} : tensor<4x256x256xf32> -> tensor<f32>
    %r2 = tessera.reduce sum %u {axes = array<i64: 0, 1>} : tensor<4096x100xbf16> -> tensor<f32>
    %t0 = tessera.binary add %r0, %r1 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    %t1 = tessera.binary add %t0, %r2 : (tensor<f32>, tensor<f32>) -> tensor<f32>
    return %t1 : tensor<f32>
  }
}
