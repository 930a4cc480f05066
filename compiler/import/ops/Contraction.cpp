// ops/Contraction.cpp - MatMul (numpy batching, rank-1 operands), Gemm, Einsum.
//
// MatMul and Gemm map to tessera.matmul (canonicalization later folds a
// transpose of an operand's last two dims into its transpose flag, so a
// weight stays a frozen param); Gemm's alpha, beta and C become
// tessera.binary. Einsum folds only.
#include "compiler/import/FoldUtil.h"
#include "compiler/import/Importer.h"
#include "compiler/import/OpRegistry.h"

#include <algorithm>
#include <map>

namespace tessera::onnximport {
namespace {

bool matmulFold(const Tensor &a0, const Tensor &b0, Tensor &out, std::string &err) {
  Tensor a = a0, b = b0;
  bool dropM = false, dropN = false;
  if (a.shape.empty() || b.shape.empty()) {
    err = "MatMul of a scalar";
    return false;
  }
  if (a.shape.size() == 1) {
    a.shape.insert(a.shape.begin(), 1);
    dropM = true;
  }
  if (b.shape.size() == 1) {
    b.shape.push_back(1);
    dropN = true;
  }
  int64_t M = a.shape[a.shape.size() - 2], K = a.shape.back();
  int64_t K2 = b.shape[b.shape.size() - 2], N = b.shape.back();
  if (K != K2) {
    err = "MatMul contraction sizes differ: " + shapeStr(a0.shape) + " x " + shapeStr(b0.shape);
    return false;
  }
  Shape ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2), batch;
  if (!broadcast(ab, bb, batch, err))
    return false;
  auto ia = bcastOffsets(ab, batch), ib = bcastOffsets(bb, batch);
  Shape os = batch;
  os.push_back(M);
  os.push_back(N);
  DType dt = a.dt == DType::F32 || b.dt == DType::F32 ? DType::F32 : DType::I64;
  out = Tensor::zeros(dt, os);
  for (size_t p = 0; p < ia.size(); ++p)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        int64_t k0 = (int64_t)p * M * N + m * N + n;
        if (dt == DType::F32) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += a.getF(ia[p] * M * K + m * K + k) * b.getF(ib[p] * K * N + k * N + n);
          out.set(k0, acc);
        } else {
          int64_t acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += a.getI(ia[p] * M * K + m * K + k) * b.getI(ib[p] * K * N + k * N + n);
          out.setI(k0, acc);
        }
      }
  Shape fs = out.shape;
  if (dropN)
    fs.erase(fs.end() - 1);
  if (dropM)
    fs.erase(fs.end() - (dropN ? 1 : 2));
  out.shape = fs;
  return true;
}

// Einsum without ellipsis, e.g. "i,j->ij" (RoPE frequencies in older exports).
bool einsumFold(std::string eq, const std::vector<const Tensor *> &in, Tensor &out, std::string &err) {
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  if (eq.find("...") != std::string::npos) {
    err = "Einsum with '...' is not supported";
    return false;
  }
  std::string lhs = eq, rhs;
  size_t arrow = eq.find("->");
  bool explicitOut = arrow != std::string::npos;
  if (explicitOut) {
    lhs = eq.substr(0, arrow);
    rhs = eq.substr(arrow + 2);
  }
  std::vector<std::string> terms;
  size_t start = 0;
  for (size_t k = 0; k <= lhs.size(); ++k)
    if (k == lhs.size() || lhs[k] == ',') {
      terms.push_back(lhs.substr(start, k - start));
      start = k + 1;
    }
  if (terms.size() != in.size()) {
    err = "Einsum equation '" + eq + "' does not match the number of inputs";
    return false;
  }
  std::map<char, int64_t> size, count;
  for (size_t t = 0; t < terms.size(); ++t) {
    if (!in[t] || terms[t].size() != in[t]->shape.size()) {
      err = "Einsum term '" + terms[t] + "' does not match its input's rank";
      return false;
    }
    for (size_t d = 0; d < terms[t].size(); ++d) {
      char c = terms[t][d];
      auto it = size.find(c);
      if (it != size.end() && it->second != in[t]->shape[d]) {
        err = std::string("Einsum index '") + c + "' has inconsistent sizes";
        return false;
      }
      size[c] = in[t]->shape[d];
      count[c]++;
    }
  }
  if (!explicitOut)
    for (auto &[c, n] : count)
      if (n == 1)
        rhs += c;
  std::string letters;
  for (auto &[c, n] : size)
    letters += c;
  Shape os;
  for (char c : rhs) {
    if (!size.count(c)) {
      err = std::string("Einsum output index '") + c + "' is not an input index";
      return false;
    }
    os.push_back(size[c]);
  }
  int64_t total = 1;
  for (char c : letters)
    total *= size[c];
  if (total > (int64_t(1) << 26)) {
    err = "Einsum too large to evaluate";
    return false;
  }
  bool isF = false;
  for (const Tensor *t : in)
    isF |= t->dt == DType::F32;
  std::vector<double> acc(numElements(os), 0.0);
  std::vector<int64_t> pos(letters.size(), 0);
  std::map<char, size_t> at;
  for (size_t k = 0; k < letters.size(); ++k)
    at[letters[k]] = k;
  for (int64_t e = 0; e < total; ++e) {
    double prod = 1;
    for (size_t t = 0; t < terms.size(); ++t) {
      int64_t off = 0;
      for (size_t d = 0; d < terms[t].size(); ++d)
        off = off * in[t]->shape[d] + pos[at[terms[t][d]]];
      prod *= in[t]->getF(off);
    }
    int64_t o = 0;
    for (size_t d = 0; d < rhs.size(); ++d)
      o = o * os[d] + pos[at[rhs[d]]];
    acc[o] += prod;
    for (int64_t k = (int64_t)letters.size() - 1; k >= 0; --k) {
      if (++pos[k] < size[letters[k]])
        break;
      pos[k] = 0;
    }
  }
  out = Tensor::zeros(isF ? DType::F32 : DType::I64, os);
  for (size_t k = 0; k < acc.size(); ++k)
    out.set(k, acc[k]);
  return true;
}

FoldResult foldMatMul(FoldNode &f) {
  if (!f.need(1))
    return f.fail();
  Tensor t;
  if (!matmulFold(*f.input(0), *f.input(1), t, f.err))
    return f.fail();
  return f.folded(std::move(t));
}

FoldResult foldEinsum(FoldNode &f) {
  Tensor t;
  if (!einsumFold(attrString(f.proto, "equation", ""), f.in, t, f.err))
    return f.fail();
  return f.folded(std::move(t));
}

// MatMul, Gemm.
bool emitMatMul(Node &node) {
  Importer &imp = node.imp;
  const onnx::NodeProto &n = node.proto;
  const std::string &op = node.op();
  std::string err;
  if (!node.need(0) || !node.need(1))
    return false;
  for (int k = 0; k < 2; ++k)
    if (std::string w = integerWeightOf(*node.arg(k)); !w.empty())
      return node.fail("input " + std::to_string(k) + " is the integer initializer " + w +
                       " (a quantized weight): LoRA adapts float weights only; export the model in float32, "
                       "float16 or bfloat16");
  mlir::Value a = node.asFloat(0), w = node.asFloat(1);
  if (!a || !w)
    return false;
  bool ta = false, tb = false;
  bool dropM = false, dropN = false;
  if (op == "Gemm") {
    if (node.rank(0) != 2 || node.rank(1) != 2)
      return node.fail("Gemm inputs must be matrices");
    ta = attrInt(n, "transA", 0) != 0;
    tb = attrInt(n, "transB", 0) != 0;
  } else {
    if (node.rank(0) == 0 || node.rank(1) == 0)
      return node.fail("MatMul of a scalar");
    if (node.rank(0) == 1) {
      Shape s = Importer::shapeOf(a);
      s.insert(s.begin(), 1);
      a = imp.reshape(a, s);
      dropM = true;
    }
    if (node.rank(1) == 1) {
      Shape s = Importer::shapeOf(w);
      s.push_back(1);
      w = imp.reshape(w, s);
      dropN = true;
    }
  }
  Shape sa = Importer::shapeOf(a), sb = Importer::shapeOf(w);
  int64_t ra = (int64_t)sa.size(), rb = (int64_t)sb.size();
  int64_t K = ta ? sa[ra - 2] : sa[ra - 1], K2 = tb ? sb[rb - 1] : sb[rb - 2];
  if (K != K2)
    return node.fail("contraction sizes differ: " + shapeStr(node.arg(0)->shape) + " x " +
                    shapeStr(node.arg(1)->shape));
  Shape batch;
  if (!broadcast(Shape(sa.begin(), sa.end() - 2), Shape(sb.begin(), sb.end() - 2), batch, err))
    return node.fail(err);
  mlir::Value r = imp.b.create<tt::MatmulOp>(imp.loc, a, w, ta, tb);
  Shape rs = Importer::shapeOf(r);
  if (dropM || dropN) {
    Shape s = rs;
    if (dropN)
      s.erase(s.end() - 1);
    if (dropM)
      s.erase(s.end() - (dropN ? 1 : 2));
    r = imp.reshape(r, s);
  }
  if (op == "Gemm") {
    float alpha = attrFloat(n, "alpha", 1.0f), beta = attrFloat(n, "beta", 1.0f);
    if (alpha != 1.0f)
      r = imp.binary(tt::BinaryFn::mul, r, imp.scalarF(alpha));
    if (node.arg(2) && beta != 0.0f && r) {
      mlir::Value c = node.asFloat(2);
      if (!c)
        return false;
      Shape bs;
      if (!broadcast(rs, node.arg(2)->shape, bs, err) || bs != rs)
        return node.fail("Gemm bias " + shapeStr(node.arg(2)->shape) + " does not broadcast to " +
                        shapeStr(rs));
      if (beta != 1.0f)
        c = imp.binary(tt::BinaryFn::mul, c, imp.scalarF(beta));
      r = c ? imp.binary(tt::BinaryFn::add, r, c) : mlir::Value();
    }
  }
  return node.push(r);
}

} // namespace

void populateContractionOps(OpRegistry &r) {
  r.on("MatMul", 13).withFold(foldMatMul).withEmit(emitMatMul);
  r.on("Gemm", 13).withEmit(emitMatMul);
  r.on("Einsum", 13).withFold(foldEinsum);
}

} // namespace tessera::onnximport
