// Writes Hugging Face's encodings of the test strings (the id oracle of
// test/text): node hf_tokenizer_oracle.mjs DIR CASES.json OUT_DIR
// (DIR: scripts/npm_oracles.sh's cache, with node_modules/ and tokenizers/).
// For each of DIR/tokenizers/{qwen3,llama3,gemma3}: OUT_DIR/<model>.json
// = {"cases": [{"text", "ids" (add_special_tokens), "ids_plain", "decoded"}]}.
// Also variants of those files with the components other models use, in
// OUT_DIR/variants/<name>/ with their encodings in OUT_DIR/<name>.json:
//   llama3-bos       Llama 3.1's post-processor: Sequence [ByteLevel, TemplateProcessing <|begin_of_text|> $A]
//   gemma3-prepend   Llama 2's pipeline: Sequence [Prepend ▁, Replace " " ▁], no pre-tokenizer, Strip decoder
//   gemma3-metaspace Mistral's: Metaspace pre-tokenizer (prepend_scheme first) and decoder
import fs from "fs";
import path from "path";
import { createRequire } from "module";

const [cacheDir, casesPath, outDir] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(cacheDir), "node_modules", "x.js"));
const { Tokenizer } = require("@huggingface/tokenizers");
const cases = JSON.parse(fs.readFileSync(casesPath, "utf8"));
fs.mkdirSync(outDir, { recursive: true });
const load = (model) => {
  const dir = path.join(cacheDir, "tokenizers", model);
  return [JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
          JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"))];
};
const variants = {
  "llama3-bos": () => {
    const [t, c] = load("llama3");
    t.post_processor = { type: "Sequence", processors: [t.post_processor, {
      type: "TemplateProcessing", single: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
             { SpecialToken: { id: "<|begin_of_text|>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [128000], tokens: ["<|begin_of_text|>"] } } }] };
    return [t, c];
  },
  "gemma3-prepend": () => {
    const [t, c] = load("gemma3");
    t.normalizer = { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "\u2581" },
                                                      { type: "Replace", pattern: { String: " " }, content: "\u2581" }] };
    t.pre_tokenizer = null;
    t.decoder = { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "\u2581" }, content: " " },
                                                { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] };
    return [t, c];
  },
  "gemma3-metaspace": () => {
    const [t, c] = load("gemma3");
    t.normalizer = null;
    t.pre_tokenizer = { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false };
    t.decoder = { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false };
    return [t, c];
  },
};
for (const model of ["qwen3", "llama3", "gemma3", ...Object.keys(variants)]) {
  let t, c;
  if (variants[model]) {
    [t, c] = variants[model]();
    const vdir = path.join(outDir, "variants", model);
    fs.mkdirSync(vdir, { recursive: true });
    fs.writeFileSync(path.join(vdir, "tokenizer.json"), JSON.stringify(t));
    fs.writeFileSync(path.join(vdir, "tokenizer_config.json"), JSON.stringify(c));
  } else {
    [t, c] = load(model);
  }
  const tok = new Tokenizer(t, c);
  const out = cases.map((text) => {
    const ids = tok.encode(text).ids;
    const plain = tok.encode(text, { add_special_tokens: false }).ids;
    const dec = (opts) => (ids.length ? tok.decode(ids, opts) : "");
    return { text, ids, ids_plain: plain, decoded: dec({}), decoded_skip: dec({ skip_special_tokens: true }) };
  });
  fs.writeFileSync(path.join(outDir, `${model}.json`), JSON.stringify({ cases: out }));
  console.log(`${model}: ${out.length} cases`);
}
