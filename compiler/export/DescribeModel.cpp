// DescribeModel.cpp - the raised graph (+ config.json) -> gguf::DecoderModel.
#include "compiler/Dialects.h"
#include "compiler/export/DescribeModel.h"

#include "compiler/import/OnnxImporter.h"
#include "runtime/gguf/LlamaCpp.h"
#include "runtime/util/File.h"
#include "runtime/weights/OnnxWeights.h"
#include "compiler/raise/Match.h"
#include "Tessera/IR/TesseraOps.h"
#include "Tessera/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>

namespace tessera {
namespace {

using namespace mlir;
using namespace mlir::tessera;
using json = nlohmann::json;
namespace fs = std::filesystem;

struct ExportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string num(double x) {
  std::ostringstream os;
  os.precision(8);
  os << x;
  return os.str();
}

bool close(double a, double b, double rel) { return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b)); }

// --- the graph ---------------------------------------------------------------

// Follows layout ops (reshape, transpose, broadcast) back to the op that made v.
Operation *through(Value v) { return raise::producerThroughViews(v); }

// The single rms_norm among v's users (through layout ops), if any.
RMSNormOp normUser(Value v) {
  for (Operation *u : v.getUsers()) {
    if (auto n = dyn_cast<RMSNormOp>(u)) return n;
    if (isa<ReshapeOp, TransposeOp>(u))
      if (RMSNormOp n = normUser(u->getResult(0))) return n;
  }
  return {};
}

class Describer {
public:
  Describer(ModuleOp m, func::FuncOp f, const weights::OnnxWeights &w, const DescribeOptions &o)
      : module_(m), forward_(f), weights_(w), o_(o) {}

  void run(ModelDescription &out);

private:
  [[noreturn]] void fail(const std::string &what) const { throw ExportError(o_.model + ": " + what); }

  // The values of a frozen param or a constant (cos/sin tables, masks).
  std::vector<float> valuesOf(Value v, const std::string &what) {
    Operation *d = v.getDefiningOp();
    auto shaped = cast<ShapedType>(v.getType());
    if (auto p = dyn_cast_or_null<ParamOp>(d)) {
      std::vector<int64_t> shape(shaped.getShape().begin(), shaped.getShape().end());
      return weights_.load(p.getName().str(), shape);
    }
    if (auto c = dyn_cast_or_null<ConstantOp>(d))
      if (auto dense = dyn_cast<DenseElementsAttr>(c.getValue()); dense && dense.getElementType().isF32()) {
        std::vector<float> out;
        out.reserve(size_t(shaped.getNumElements()));
        if (dense.isSplat())
          out.assign(size_t(shaped.getNumElements()), dense.getSplatValue<float>());
        else
          for (float x : dense.getValues<float>()) out.push_back(x);
        return out;
      }
    fail(what + " is computed at run time, not a constant of the graph");
  }

  gguf::TensorSource weightOf(Value v, const std::string &what, bool linearRhs, bool transposeRhs) {
    gguf::TensorSource s;
    auto shaped = cast<ShapedType>(v.getType());
    s.shape.assign(shaped.getShape().begin(), shaped.getShape().end());
    Operation *d = v.getDefiningOp();
    if (auto p = dyn_cast_or_null<ParamOp>(d)) {
      if (p.getKind() != ParamKind::frozen) fail(what + " is not a frozen weight");
      s.param = p.getName().str();
    } else if (isa_and_nonnull<ConstantOp>(d)) {
      s.values = valuesOf(v, what);
    } else {
      fail(what + " is computed in the graph (not an initializer)");
    }
    if (linearRhs) {
      if (s.shape.size() != 2) fail(what + " is not a 2-D weight");
      s.transpose = !transposeRhs; // llama.cpp stores [out, in]
    }
    return s;
  }

  MatmulOp linear(const std::string &name) {
    auto it = linears_.find(name);
    if (it == linears_.end()) fail("no linear layer " + name + " was recognised in the graph (tessera inspect lists them)");
    return it->second;
  }

  gguf::TensorSource linearWeight(const std::string &name) {
    MatmulOp mm = linear(name);
    return weightOf(mm.getRhs(), name, true, mm.getTransposeRhs());
  }

  gguf::TensorSource normWeight(RMSNormOp n, const std::string &what) {
    gguf::TensorSource s = weightOf(n.getWeight(), what, false, false);
    s.add = n.getWeightOffset().convertToDouble();
    double eps = n.getEps().convertToDouble();
    if (!close(eps, eps_, 1e-6)) fail(what + " has eps " + num(eps) + ", other norms " + num(eps_) + " (llama.cpp has one eps)");
    return s;
  }

  // RoPE frequencies (radians per position, D/2 of them) from a rope's tables.
  std::vector<double> ropeFrequencies(RopeOp rope, int64_t layer);
  // Sliding window of a layer's mask: -1 causal, w > 0 a window of w.
  int64_t windowOf(AttentionOp att, int64_t archWindow, int64_t layer);

  ModuleOp module_;
  func::FuncOp forward_;
  const weights::OnnxWeights &weights_;
  const DescribeOptions &o_;
  std::map<std::string, MatmulOp> linears_;
  double eps_ = 0;
};

std::vector<double> Describer::ropeFrequencies(RopeOp rope, int64_t layer) {
  auto shape = cast<ShapedType>(rope.getCos().getType()).getShape();
  if (shape.size() < 2) fail("layer " + std::to_string(layer) + ": RoPE tables of rank < 2");
  int64_t T = shape[shape.size() - 2], D = shape.back();
  if (T < 2) fail("RoPE tables have a single position; import at --seq >= 2");
  std::vector<float> c = valuesOf(rope.getCos(), "layer " + std::to_string(layer) + "'s RoPE cos table");
  std::vector<float> s = valuesOf(rope.getSin(), "layer " + std::to_string(layer) + "'s RoPE sin table");
  // The first [T, D] slice holds positions 0..T-1 (leading dims broadcast).
  std::vector<double> f(size_t(D / 2));
  const double twoPi = 2 * M_PI;
  for (int64_t i = 0; i < D / 2; ++i) {
    double f1 = std::atan2(double(s[size_t(D + i)]), double(c[size_t(D + i)]));
    if (f1 < 0) f1 += twoPi;
    int64_t p = T - 1;
    double ap = std::atan2(double(s[size_t(p * D + i)]), double(c[size_t(p * D + i)]));
    double k = std::round((double(p) * f1 - ap) / twoPi);
    f[size_t(i)] = (ap + twoPi * k) / double(p);
  }
  return f;
}

int64_t Describer::windowOf(AttentionOp att, int64_t archWindow, int64_t layer) {
  if (archWindow != -2) return archWindow;
  // A static export bakes the mask in as an initializer: read it.
  Value mask = att.getMask();
  auto shape = cast<ShapedType>(mask.getType()).getShape();
  std::vector<float> v = valuesOf(mask, "layer " + std::to_string(layer) + "'s attention mask");
  int64_t rows = shape[shape.size() - 2], cols = shape.back(), offset = cols - rows, window = -1;
  for (int64_t i = 0; i < rows; ++i) {
    int64_t first = -1;
    for (int64_t j = 0; j < cols; ++j) {
      bool masked = v[size_t(i * cols + j)] < -1e9f;
      if ((j > i + offset && !masked) || (first >= 0 && j <= i + offset && masked))
        fail("layer " + std::to_string(layer) + "'s attention mask is neither causal nor a sliding window");
      if (!masked && first < 0) first = j;
    }
    if (first > 0) window = std::max<int64_t>(window, i + offset - first + 1);
  }
  return window;
}

// --- config.json ---------------------------------------------------------------

struct Config {
  json j;
  std::string path;
  bool present() const { return !path.empty(); }
  bool has(const char *k) const { return present() && j.contains(k) && !j[k].is_null(); }
  double number(const char *k) const {
    if (!j[k].is_number()) throw ExportError(path + ": " + k + " must be a number");
    return j[k].get<double>();
  }
  std::optional<int64_t> tokenId(const char *k) const {
    if (!has(k)) return std::nullopt;
    const json &v = j[k];
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int64_t>();
    return std::nullopt;
  }
};

// RoPE parameters of one layer type: transformers 5 `rope_parameters` (flat or
// per layer type), or transformers 4 `rope_theta` / `rope_scaling` /
// `rope_local_base_freq`.
json ropeParams(const Config &c, const char *layerType) {
  if (c.has("rope_parameters")) {
    const json &rp = c.j["rope_parameters"];
    if (rp.is_object() && rp.contains(layerType) && rp[layerType].is_object()) return rp[layerType];
    if (rp.is_object() && rp.contains("rope_theta")) return rp;
  }
  json out = json::object();
  bool local = std::string(layerType) == "sliding_attention";
  if (local && c.has("rope_local_base_freq")) out["rope_theta"] = c.j["rope_local_base_freq"];
  else if (c.has("rope_theta")) out["rope_theta"] = c.j["rope_theta"];
  if (!local && c.has("rope_scaling") && c.j["rope_scaling"].is_object()) out.update(c.j["rope_scaling"]);
  if (out.contains("type") && !out.contains("rope_type")) out["rope_type"] = out["type"];
  return out;
}

// llama.cpp's rope_freqs factors for Llama 3.1-style scaling (what its
// converter computes from the same config fields).
std::vector<float> llama3Factors(const json &rp, double theta, int64_t D) {
  double factor = rp.value("factor", 8.0), lo = rp.value("low_freq_factor", 1.0), hi = rp.value("high_freq_factor", 4.0);
  double oldCtx = rp.value("original_max_position_embeddings", 8192.0);
  double loWave = oldCtx / lo, hiWave = oldCtx / hi;
  std::vector<float> out;
  for (int64_t i = 0; i < D; i += 2) {
    double freq = 1.0 / std::pow(theta, double(i) / double(D));
    double wave = 2 * M_PI / freq;
    if (wave < hiWave) out.push_back(1.0f);
    else if (wave > loWave) out.push_back(float(factor));
    else {
      double smooth = (oldCtx / wave - lo) / (hi - lo);
      out.push_back(float(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

void Describer::run(ModelDescription &out) {
  auto arch = module_->getAttrOfType<DictionaryAttr>(attrs::arch);
  auto intField = [&](StringRef k) {
    auto a = arch.getAs<IntegerAttr>(k);
    return a ? a.getInt() : int64_t(0);
  };
  auto floatField = [&](StringRef k) {
    auto a = arch.getAs<FloatAttr>(k);
    return a ? a.getValueAsDouble() : 0.0;
  };
  auto strField = [&](StringRef k) {
    auto a = arch.getAs<StringAttr>(k);
    return a ? a.str() : std::string();
  };
  if (!arch || intField("layers") == 0)
    fail("not a decoder language model: no embedding followed by residual attention/MLP blocks was recognised");
  std::string guess = strField("arch");
  std::optional<std::string> llamaArch = gguf::llamaCppArch(guess);
  if (!llamaArch)
    fail("architecture '" + guess + "' has no llama.cpp counterpart here (Llama 3, Qwen 3 and Gemma 3 export to GGUF)");
  if (auto generic = arch.getAs<ArrayAttr>("generic_ops"); generic && !generic.empty()) {
    auto d = cast<DictionaryAttr>(generic[0]);
    fail("the graph has ops outside the recognised decoder (" + d.getAs<StringAttr>("op").str() +
         ", see `tessera inspect`): llama.cpp's " + *llamaArch + " would compute something else");
  }

  gguf::DecoderModel &m = out.model;
  m.arch = *llamaArch;
  const int64_t L = intField("layers");
  m.hidden = intField("hidden");
  m.heads = intField("heads");
  m.kv_heads = intField("kv_heads");
  m.head_dim = intField("head_dim");
  m.intermediate = intField("intermediate");
  m.vocab = intField("vocab");
  m.norm_eps = eps_ = floatField("norm_eps");
  m.tied_embeddings = arch.getAs<BoolAttr>("tied_embeddings") && arch.getAs<BoolAttr>("tied_embeddings").getValue();
  out.attention_scale = floatField("attention_scale");

  // config.json: explicit, else beside the model.
  Config cfg;
  std::string cfgPath = o_.config;
  std::error_code ec;
  if (cfgPath.empty()) {
    fs::path beside = fs::path(o_.model).parent_path() / "config.json";
    if (fs::exists(beside, ec)) cfgPath = beside.string();
  }
  if (!cfgPath.empty()) {
    std::vector<uint8_t> bytes = util::readFile(cfgPath);
    try {
      cfg.j = json::parse(bytes.begin(), bytes.end());
    } catch (const json::exception &e) {
      throw ExportError(cfgPath + ": not valid JSON: " + e.what());
    }
    if (!cfg.j.is_object()) throw ExportError(cfgPath + ": not a JSON object");
    if (cfg.j.contains("text_config") && cfg.j["text_config"].is_object()) cfg.j.update(cfg.j["text_config"]);
    cfg.path = cfgPath;
    out.config = cfgPath;
  }
  auto agree = [&](const char *key, double graph, double rel = 0) {
    if (!cfg.has(key)) return;
    double c = cfg.number(key);
    if (rel == 0 ? c != graph : !close(c, graph, rel))
      throw ExportError(cfg.path + ": " + key + " = " + num(c) + " but the model's graph has " + num(graph) +
                        " (is this config.json the model's?)");
  };
  agree("num_hidden_layers", double(L));
  agree("hidden_size", double(m.hidden));
  agree("num_attention_heads", double(m.heads));
  agree("num_key_value_heads", double(m.kv_heads));
  agree("head_dim", double(m.head_dim));
  agree("intermediate_size", double(m.intermediate));
  agree("vocab_size", double(m.vocab));
  agree("rms_norm_eps", m.norm_eps, 1e-5);
  if (cfg.has("tie_word_embeddings") && cfg.j["tie_word_embeddings"].is_boolean() &&
      cfg.j["tie_word_embeddings"].get<bool>() != m.tied_embeddings)
    throw ExportError(cfg.path + ": tie_word_embeddings = " + cfg.j["tie_word_embeddings"].dump() +
                      " but the model's graph " + (m.tied_embeddings ? "ties" : "does not tie") + " them");
  if (cfg.has("final_logit_softcapping"))
    throw ExportError(cfg.path + ": final_logit_softcapping: logit soft-capping is not supported by the export");
  out.ids.bos = cfg.tokenId("bos_token_id");
  out.ids.eos = cfg.tokenId("eos_token_id");
  out.ids.pad = cfg.tokenId("pad_token_id");
  m.name = cfg.has("_name_or_path") && cfg.j["_name_or_path"].is_string() && !cfg.j["_name_or_path"].get<std::string>().empty()
               ? cfg.j["_name_or_path"].get<std::string>()
               : fs::path(o_.model).stem().string();

  // Context length.
  if (o_.context_length > 0) m.context = o_.context_length;
  else if (cfg.has("max_position_embeddings")) m.context = int64_t(cfg.number("max_position_embeddings"));
  else fail("the context length is unknown: no config.json with max_position_embeddings beside the model; pass --context-length N");

  // Architecture checks llama.cpp's graphs hard-code.
  double embScale = floatField("embedding_scale");
  bool gemma = m.arch == "gemma3";
  double wantEmb = gemma ? std::sqrt(double(m.hidden)) : 1.0;
  if (!close(embScale, wantEmb, 1e-5))
    fail("embedding scale " + num(embScale) + ": llama.cpp's " + m.arch + " scales embeddings by " + num(wantEmb));
  std::string act = strField("activation");
  if (act != (gemma ? "gelu_tanh" : "silu"))
    fail("activation '" + act + "': llama.cpp's " + m.arch + " uses " + (gemma ? "GELU (tanh)" : "SiLU"));
  bool qkNorm = arch.getAs<BoolAttr>("qk_norm") && arch.getAs<BoolAttr>("qk_norm").getValue();
  if (qkNorm != (m.arch != "llama")) fail(std::string("q/k norms ") + (qkNorm ? "present" : "absent") + ": llama.cpp's " + m.arch + " has " + (qkNorm ? "none" : "them"));
  if (m.heads <= 0 || m.kv_heads <= 0 || m.head_dim <= 0 || m.heads % m.kv_heads != 0)
    fail("heads " + std::to_string(m.heads) + " / kv heads " + std::to_string(m.kv_heads) + " / head dim " +
         std::to_string(m.head_dim) + " are not a grouped-query attention llama.cpp can run");

  // Linear layers by structural name, the embedding, the attention ops by layer.
  EmbeddingOp emb;
  std::map<int64_t, AttentionOp> attention;
  forward_.walk([&](Operation *op) {
    if (auto mm = dyn_cast<MatmulOp>(op))
      if (auto n = mm->getAttrOfType<StringAttr>(attrs::module)) linears_[n.str()] = mm;
    if (auto e = dyn_cast<EmbeddingOp>(op)) emb = e;
    if (auto a = dyn_cast<AttentionOp>(op))
      if (auto l = a->getAttrOfType<IntegerAttr>(attrs::layer)) attention[l.getInt()] = a;
  });
  if (!emb) fail("no token embedding was recognised");
  m.token_embd = weightOf(emb.getTable(), "the embedding table", false, false);
  MatmulOp head = linear("lm_head");
  if (!m.tied_embeddings) m.output = linearWeight("lm_head");
  RMSNormOp finalNorm = dyn_cast_or_null<RMSNormOp>(head.getLhs().getDefiningOp());
  if (!finalNorm) fail("lm_head's input is not an RMSNorm (the final norm)");
  m.output_norm = normWeight(finalNorm, "the final norm");

  // Attention scale: llama.cpp's is 1/sqrt(head_dim) (Gemma 3 27B: 1/sqrt(hidden/heads)).
  double llamaScale = 1.0 / std::sqrt(double(gemma && L == 62 ? m.hidden / m.heads : m.head_dim));
  double qNormMul = 1.0;
  if (!close(out.attention_scale, llamaScale, 1e-6)) {
    if (m.arch == "llama")
      fail("attention scale " + num(out.attention_scale) + ": llama.cpp's llama uses 1/sqrt(head_dim) = " + num(llamaScale));
    // q = q_norm(q) * w: scaling w scales q, and the scores, exactly.
    qNormMul = out.attention_scale / llamaScale;
  }

  // Layers.
  auto windows = arch.getAs<DenseI64ArrayAttr>("attention_windows");
  std::vector<int64_t> graphWindows(static_cast<size_t>(L), -1);
  std::vector<std::vector<double>> freqs(static_cast<size_t>(L));
  m.layers.resize(size_t(L));
  for (int64_t i = 0; i < L; ++i) {
    std::string p = "layers." + std::to_string(i) + ".";
    gguf::DecoderLayer &l = m.layers[size_t(i)];
    auto it = attention.find(i);
    if (it == attention.end()) fail("layer " + std::to_string(i) + " has no recognised attention");
    AttentionOp att = it->second;
    MatmulOp q = linear(p + "self_attn.q_proj"), k = linear(p + "self_attn.k_proj");
    for (MatmulOp mm : {q, k, linear(p + "self_attn.v_proj")})
      if (mm.getLhs() != q.getLhs()) fail(p + "self_attn: q, k and v do not read the same normed input");
    auto attnNorm = dyn_cast_or_null<RMSNormOp>(q.getLhs().getDefiningOp());
    if (!attnNorm) fail(p + "self_attn.q_proj's input is not an RMSNorm");
    l.attn_norm = normWeight(attnNorm, p + "input_layernorm");
    l.q = linearWeight(p + "self_attn.q_proj");
    l.k = linearWeight(p + "self_attn.k_proj");
    l.v = linearWeight(p + "self_attn.v_proj");
    l.o = linearWeight(p + "self_attn.o_proj");
    l.permute_qk = gguf::permutesQK(m.arch);
    // q / k: attention <- rope <- (q/k norm) <- projection.
    auto rq = dyn_cast_or_null<RopeOp>(through(att.getQuery()));
    auto rk = dyn_cast_or_null<RopeOp>(through(att.getKey()));
    if (!rq || !rk) fail("layer " + std::to_string(i) + ": no RoPE on the attention's query and key");
    if (qkNorm) {
      auto qn = dyn_cast_or_null<RMSNormOp>(through(rq.getInput()));
      auto kn = dyn_cast_or_null<RMSNormOp>(through(rk.getInput()));
      if (!qn || !kn) fail("layer " + std::to_string(i) + ": the q/k norms are not right before RoPE");
      l.q_norm = normWeight(qn, p + "self_attn.q_norm");
      l.q_norm.mul = qNormMul;
      l.k_norm = normWeight(kn, p + "self_attn.k_norm");
    }
    if (rq.getCos() != rk.getCos() || rq.getSin() != rk.getSin())
      fail("layer " + std::to_string(i) + ": q and k use different RoPE tables");
    freqs[size_t(i)] = ropeFrequencies(rq, i);
    // Post-attention norm (Gemma): between o_proj and the residual add.
    MatmulOp oProj = linear(p + "self_attn.o_proj");
    RMSNormOp postAttn = oProj->hasOneUse() ? dyn_cast<RMSNormOp>(*oProj->getUsers().begin()) : RMSNormOp();
    MatmulOp gate = linear(p + "mlp.gate_proj"), up = linear(p + "mlp.up_proj"), down = linear(p + "mlp.down_proj");
    if (up.getLhs() != gate.getLhs()) fail(p + "mlp: gate and up do not read the same normed input");
    auto ffnNorm = dyn_cast_or_null<RMSNormOp>(gate.getLhs().getDefiningOp());
    if (!ffnNorm) fail(p + "mlp.gate_proj's input is not an RMSNorm");
    l.ffn_norm = normWeight(ffnNorm, p + "post_attention_layernorm");
    l.gate = linearWeight(p + "mlp.gate_proj");
    l.up = linearWeight(p + "mlp.up_proj");
    l.down = linearWeight(p + "mlp.down_proj");
    RMSNormOp postFfn = down->hasOneUse() ? dyn_cast<RMSNormOp>(*down->getUsers().begin()) : RMSNormOp();
    if (gemma != bool(postAttn) || gemma != bool(postFfn))
      fail("layer " + std::to_string(i) + (gemma ? ": Gemma 3 has norms after attention and MLP, the graph does not"
                                                 : ": norms after attention / MLP, which llama.cpp's " + m.arch + " has not"));
    if (gemma) {
      l.post_attention_norm = normWeight(postAttn, p + "post_attention_norm");
      l.post_ffw_norm = normWeight(postFfn, p + "post_feedforward_layernorm");
    }
    int64_t w = windows && size_t(i) < windows.size() ? windows[size_t(i)] : -1;
    if (w == 0) fail("layer " + std::to_string(i) + "'s attention mask is neither causal nor a sliding window");
    graphWindows[size_t(i)] = att.getMask() ? windowOf(att, w, i) : -1;
  }

  // Sliding windows: config.json's layer types and size, checked against the
  // masks; else the masks alone.
  const int64_t T = o_.seq;
  std::vector<bool> swa(size_t(L), false);
  int64_t window = 0;
  if (cfg.has("sliding_window") && gemma) {
    window = int64_t(cfg.number("sliding_window"));
    if (cfg.has("layer_types") && cfg.j["layer_types"].is_array() && int64_t(cfg.j["layer_types"].size()) == L) {
      for (int64_t i = 0; i < L; ++i) swa[size_t(i)] = cfg.j["layer_types"][size_t(i)] == "sliding_attention";
    } else {
      int64_t period = cfg.has("sliding_window_pattern") ? int64_t(cfg.number("sliding_window_pattern")) : 6;
      for (int64_t i = 0; i < L; ++i) swa[size_t(i)] = period > 0 && (i + 1) % period != 0;
    }
    for (int64_t i = 0; i < L; ++i) {
      int64_t g = graphWindows[size_t(i)];
      bool ok = swa[size_t(i)] ? (g == window || (g == -1 && window >= T)) : g == -1;
      if (!ok)
        throw ExportError(cfg.path + ": layer " + std::to_string(i) + " is " +
                          (swa[size_t(i)] ? "a sliding-window layer of " + std::to_string(window) : std::string("a full-attention layer")) +
                          " but the graph's mask " + (g > 0 ? "is a window of " + std::to_string(g) : std::string("is causal")));
    }
  } else {
    for (int64_t i = 0; i < L; ++i)
      if (graphWindows[size_t(i)] > 0) {
        if (window && window != graphWindows[size_t(i)]) fail("layers have sliding windows of different sizes");
        window = graphWindows[size_t(i)];
        swa[size_t(i)] = true;
      }
  }
  bool anySwa = false;
  for (bool b : swa) anySwa = anySwa || b;
  if (anySwa && !gemma) fail("sliding-window attention: llama.cpp's " + m.arch + " has none");
  if (anySwa) {
    // llama.cpp: layer i is a window layer iff i % pattern < pattern - 1.
    int64_t pattern = -1;
    for (int64_t pt = 2; pt <= L + 1 && pattern < 0; ++pt) {
      bool fits = true;
      for (int64_t i = 0; i < L; ++i) fits = fits && swa[size_t(i)] == (i % pt < pt - 1);
      if (fits) pattern = pt;
    }
    if (pattern < 0) fail("the sliding-window layers do not repeat with a period llama.cpp can express");
    m.sliding_window = window;
    m.sliding_window_pattern = pattern;
  }

  // RoPE: fit base (and a linear factor) per layer kind from the tables, then
  // take config.json's when it is there, checking the two agree.
  const int64_t D = m.head_dim;
  auto fit = [&](const std::vector<double> &f, double &theta, double &factor) {
    factor = 1.0 / f[0];
    theta = std::pow(f[1] / f[0], -double(D) / 2.0);
    if (std::fabs(theta - std::round(theta)) < 1e-4 * theta) theta = std::round(theta);
  };
  auto matches = [&](const std::vector<double> &f, double theta, double factor, const std::vector<float> &factors) {
    for (size_t i = 0; i < f.size(); ++i) {
      double want = std::pow(theta, -2.0 * double(i) / double(D)) / factor / (factors.empty() ? 1.0 : factors[i]);
      // Angles at the last position must agree to float32 precision.
      if (std::fabs((f[i] - want) * double(T - 1)) > 1e-4 + 1e-4 * want * double(T - 1)) return false;
    }
    return true;
  };
  auto kindOf = [&](int64_t i) { return swa[size_t(i)] ? "sliding_attention" : "full_attention"; };
  std::map<std::string, std::vector<int64_t>> kinds;
  for (int64_t i = 0; i < L; ++i) kinds[kindOf(i)].push_back(i);
  for (auto &[kind, layerIds] : kinds) {
    const std::vector<double> &f = freqs[size_t(layerIds[0])];
    for (int64_t i : layerIds)
      for (size_t j = 0; j < f.size(); ++j)
        if (std::fabs(freqs[size_t(i)][j] - f[j]) * double(T - 1) > 1e-4)
          fail("layers " + std::to_string(layerIds[0]) + " and " + std::to_string(i) + " use different RoPE frequencies");
    double theta = 0, factor = 1;
    std::vector<float> factors;
    if (cfg.present()) {
      json rp = ropeParams(cfg, kind.c_str());
      if (!rp.contains("rope_theta") || !rp["rope_theta"].is_number())
        throw ExportError(cfg.path + ": rope_theta (or rope_parameters) missing");
      theta = rp["rope_theta"].get<double>();
      std::string type = rp.value("rope_type", std::string("default"));
      if (type == "linear") factor = rp.value("factor", 1.0);
      else if (type == "llama3" && m.arch == "llama") factors = llama3Factors(rp, theta, D);
      else if (type != "default")
        throw ExportError(cfg.path + ": rope_type \"" + type + "\" is not supported by the export (default, linear and, for llama, llama3 are)");
      if (!matches(f, theta, factor, factors)) {
        double ft, ff;
        fit(f, ft, ff);
        throw ExportError(cfg.path + ": RoPE " + kind + ": rope_theta " + num(theta) +
                          " does not match the graph's tables (which fit a base of " + num(ft) + ")");
      }
    } else {
      fit(f, theta, factor);
      if (!matches(f, theta, factor, factors))
        fail("the RoPE frequencies do not follow base^(-2i/d) (rope scaling?): put the model's config.json beside it");
      if (close(factor, 1.0, 1e-5)) factor = 1.0;
    }
    if (kind == "sliding_attention") {
      m.rope_theta_swa = theta;
      if (factor != 1.0) fail("linear RoPE scaling on sliding-window layers: llama.cpp scales global layers only");
    } else {
      m.rope_theta = theta;
      m.rope_linear_factor = factor != 1.0 ? factor : 0.0;
      m.rope_freq_factors = factors;
    }
  }
  if (m.rope_theta == 0) m.rope_theta = m.rope_theta_swa; // every layer a window layer
}

} // namespace

int describeModel(const DescribeOptions &o, ModelDescription &out, std::string &error) {
  MLIRContext ctx;
  DialectRegistry registry;
  ::tessera::registerCompilerDialects(registry);
  ctx.appendDialectRegistry(registry);
  ctx.loadAllAvailableDialects();
  ctx.printOpOnDiagnostic(false);
  std::string firstError;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    if (d.getSeverity() == DiagnosticSeverity::Error && firstError.empty()) firstError = d.str();
    return success();
  });
  if (o.seq < 2) {
    error = "--seq must be >= 2 (RoPE frequencies are read from positions 0 and 1 on)";
    return 1;
  }
  OwningOpRef<ModuleOp> module = importOnnx(ctx, o.model, ImportOptions{1, o.seq}, error);
  if (!module) {
    if (error.empty()) error = o.model + ": import failed: " + firstError;
    return 1;
  }
  PassManager pm(&ctx);
  pm.addPass(createTesseraRaise());
  if (failed(pm.run(*module))) {
    error = o.model + ": " + firstError;
    return 1;
  }
  auto forward = module->lookupSymbol<func::FuncOp>("forward");
  if (!forward) {
    error = o.model + ": no @forward function";
    return 1;
  }
  try {
    weights::OnnxWeights w(o.model);
    Describer(*module, forward, w, o).run(out);
  } catch (const std::exception &e) {
    error = e.what();
    return 1;
  }
  return 0;
}

} // namespace tessera
