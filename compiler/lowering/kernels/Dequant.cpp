#include "compiler/lowering/kernels/Dequant.h"

using namespace mlir;

namespace tessera::lowering {

MemRefType quantMemRefType(MLIRContext *ctx, const quant::QuantizedWeight &q) {
  uint64_t bytes = plan::bufferBytes(q.dtype, uint64_t(q.rows * q.cols));
  return MemRefType::get({int64_t(std::max<uint64_t>(bytes / 4, 1))}, IntegerType::get(ctx, 32));
}

std::string quantKey(const quant::QuantizedWeight &q) {
  return std::string(plan::dtypeName(q.dtype)) + (q.transposed ? "^T" : "");
}

namespace {

Value i32Of(KernelBuilder &kb, Value index) {
  return kb.b.create<arith::IndexCastOp>(kb.b.getI32Type(), index);
}

// Bits [8 * (off % 4), ...) of the word holding byte `off`.
Value wordAt(KernelBuilder &kb, Value mem, Value off) {
  Value w = kb.load(mem, kb.udiv(off, kb.idx(4)));
  Value shift = i32Of(kb, kb.muli(kb.urem(off, kb.idx(4)), 8));
  return kb.b.create<arith::ShRUIOp>(w, shift);
}

// f16 bits (low 16 bits of an i32) -> f32, exactly: normal numbers by moving
// exponent and mantissa into place, subnormals as mantissa * 2^-24 (no f32
// subnormal is ever formed, so flush-to-zero devices agree), inf / NaN kept.
Value halfBitsToF32(KernelBuilder &kb, Value bits) {
  auto &b = kb.b;
  Value mag = b.create<arith::AndIOp>(bits, kb.i32(0x7fff));
  Value exp = b.create<arith::ShRUIOp>(mag, kb.i32(10));
  Value mant = b.create<arith::AndIOp>(bits, kb.i32(0x3ff));
  Value rebias = kb.select(b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, exp, kb.i32(31)),
                           kb.i32(224 << 23), kb.i32(112 << 23));
  Value normal = b.create<arith::BitcastOp>(
      b.getF32Type(), b.create<arith::AddIOp>(b.create<arith::ShLIOp>(mag, kb.i32(13)), rebias));
  Value sub = kb.fmul(b.create<arith::UIToFPOp>(b.getF32Type(), mant), kb.f32(1.0 / 16777216.0));
  Value value = kb.select(b.create<arith::CmpIOp>(arith::CmpIPredicate::eq, exp, kb.i32(0)), sub, normal);
  Value neg = b.create<arith::CmpIOp>(arith::CmpIPredicate::ne, b.create<arith::AndIOp>(bits, kb.i32(0x8000)),
                                      kb.i32(0));
  return kb.select(neg, b.create<arith::NegFOp>(value), value);
}

} // namespace

namespace {

// Where element `s` of the block layout lives: its block's scale (byte
// offset), the byte holding its code, the code's bit position in that byte
// (i32) and its mask and bias (value = (code - bias) * scale; Q8_0's code is
// the signed byte).
struct CodeAt {
  Value scaleOff, byteOff, shift;
  int32_t mask = 0xff, bias = 0;
};

CodeAt codeAt(KernelBuilder &kb, plan::DType dtype, Value s) {
  const int64_t per = int64_t(plan::blockElements(dtype)), bytes = int64_t(plan::blockBytes(dtype));
  Value blk = kb.udiv(s, kb.idx(per)), e = kb.urem(s, kb.idx(per));
  Value base = kb.muli(blk, bytes);
  CodeAt at;
  at.shift = kb.i32(0);
  switch (dtype) {
  case plan::DType::Q8_0:
    at.scaleOff = base;
    at.byteOff = kb.add(base, kb.addi(e, 2));
    break;
  case plan::DType::Q4_0: // byte j: values j (low nibble) and j + 16 (high)
    at.scaleOff = base;
    at.byteOff = kb.add(base, kb.addi(kb.urem(e, kb.idx(16)), 2));
    at.shift = i32Of(kb, kb.muli(kb.udiv(e, kb.idx(16)), 4));
    at.mask = 0xf, at.bias = 8;
    break;
  case plan::DType::TQ2_0: // byte 32c + m: values 128c + m + 32n at bits 2n
  default:
    at.scaleOff = kb.addi(base, 64);
    at.byteOff = kb.add(base, kb.add(kb.muli(kb.udiv(e, kb.idx(128)), 32), kb.urem(e, kb.idx(32))));
    at.shift = i32Of(kb, kb.muli(kb.udiv(kb.urem(e, kb.idx(128)), kb.idx(32)), 2));
    at.mask = 0x3, at.bias = 1;
    break;
  }
  return at;
}

// The code in `byte`'s low 8 bits (higher bits ignored) as an i32 value.
Value codeOf(KernelBuilder &kb, plan::DType dtype, const CodeAt &at, Value byte) {
  auto &b = kb.b;
  if (dtype == plan::DType::Q8_0) // int8: sign-extend the low byte
    return b.create<arith::ShRSIOp>(b.create<arith::ShLIOp>(byte, kb.i32(24)), kb.i32(24));
  Value code = b.create<arith::AndIOp>(b.create<arith::ShRUIOp>(byte, at.shift), kb.i32(at.mask));
  return b.create<arith::SubIOp>(code, kb.i32(at.bias));
}

} // namespace

Value loadDequantized(KernelBuilder &kb, Value mem, const quant::QuantizedWeight &q, Value i) {
  auto &b = kb.b;
  // Position in the block layout.
  Value s = i;
  if (q.transposed) {
    Value r = kb.udiv(i, kb.idx(q.cols)), c = kb.urem(i, kb.idx(q.cols));
    s = kb.add(kb.muli(c, q.rows), r);
  }
  CodeAt at = codeAt(kb, q.dtype, s);
  Value d = halfBitsToF32(kb, b.create<arith::AndIOp>(wordAt(kb, mem, at.scaleOff), kb.i32(0xffff)));
  Value code = codeOf(kb, q.dtype, at, wordAt(kb, mem, at.byteOff));
  return kb.fmul(b.create<arith::SIToFPOp>(b.getF32Type(), code), d);
}

bool dequantRunFits(const quant::QuantizedWeight &q, int64_t n) {
  return !q.transposed && (n == 4 || n == 8 || n == 16) && int64_t(plan::blockElements(q.dtype)) % n == 0 &&
         q.cols % n == 0;
}

SmallVector<Value> loadDequantizedRun(KernelBuilder &kb, Value mem, const quant::QuantizedWeight &q, Value i,
                                      int64_t n) {
  auto &b = kb.b;
  // In all three layouts the elements of a run sit in consecutive bytes, at
  // the same bit position within each: the first one's place serves the run.
  CodeAt at = codeAt(kb, q.dtype, i);
  Value d = halfBitsToF32(kb, b.create<arith::AndIOp>(wordAt(kb, mem, at.scaleOff), kb.i32(0xffff)));
  // Block sizes (34, 18, 66 bytes) and run starts are even, so the run's
  // bytes start at the low or the high half of a word: n / 4 + 1 words,
  // realigned by 16 bits in the second case. The extra word is clamped into
  // the buffer (only the realigned case reads it, and then it is inside).
  const int64_t words = n / 4, last = cast<MemRefType>(mem.getType()).getNumElements() - 1;
  Value w0 = kb.udiv(at.byteOff, kb.idx(4));
  Value high =
      b.create<arith::CmpIOp>(arith::CmpIPredicate::ne, i32Of(kb, kb.urem(at.byteOff, kb.idx(4))), kb.i32(0));
  SmallVector<Value> raw;
  for (int64_t w = 0; w <= words; ++w)
    raw.push_back(kb.load(mem, b.create<arith::MinUIOp>(kb.addi(w0, w), kb.idx(last))));
  SmallVector<Value> values;
  for (int64_t w = 0; w < words; ++w) {
    Value shifted = b.create<arith::OrIOp>(b.create<arith::ShRUIOp>(raw[w], kb.i32(16)),
                                           b.create<arith::ShLIOp>(raw[w + 1], kb.i32(16)));
    Value word = kb.select(high, shifted, raw[w]);
    for (int64_t j = 0; j < 4; ++j) {
      Value code = codeOf(kb, q.dtype, at, b.create<arith::ShRUIOp>(word, kb.i32(8 * j)));
      values.push_back(kb.fmul(b.create<arith::SIToFPOp>(b.getF32Type(), code), d));
    }
  }
  return values;
}

Value loadTernaryCodes4(KernelBuilder &kb, Value mem, const quant::QuantizedWeight &q, Value i) {
  assert(q.dtype == plan::DType::TQ2_0 && !q.transposed && "ternary codes along axis 1");
  auto &b = kb.b;
  // Four consecutive codes sit in four consecutive bytes at the same bit
  // position; blocks are 66 bytes, so the bytes start at the low or the
  // high half of a word (realigned by 16 bits; the second word is clamped
  // into the buffer, only the realigned case reads it and then it is inside).
  CodeAt at = codeAt(kb, q.dtype, i);
  const int64_t last = cast<MemRefType>(mem.getType()).getNumElements() - 1;
  Value w0 = kb.udiv(at.byteOff, kb.idx(4));
  Value lo = kb.load(mem, w0), hi = kb.load(mem, b.create<arith::MinUIOp>(kb.addi(w0, 1), kb.idx(last)));
  Value high =
      b.create<arith::CmpIOp>(arith::CmpIPredicate::ne, i32Of(kb, kb.urem(at.byteOff, kb.idx(4))), kb.i32(0));
  Value word = kb.select(high,
                         b.create<arith::OrIOp>(b.create<arith::ShRUIOp>(lo, kb.i32(16)),
                                                b.create<arith::ShLIOp>(hi, kb.i32(16))),
                         lo);
  // Bytes c in {0, 1, 2} (code + 1); c + 0x7f never carries into the next
  // byte, and flipping its top bit gives the signed byte c - 1.
  Value c = b.create<arith::AndIOp>(b.create<arith::ShRUIOp>(word, at.shift), kb.i32(0x03030303));
  return b.create<arith::XOrIOp>(b.create<arith::AddIOp>(c, kb.i32(0x7f7f7f7f)), kb.i32(int32_t(0x80808080u)));
}

} // namespace tessera::lowering
