// Hugging Face's tokenization (@huggingface/tokenizers, the JavaScript port of
// `tokenizers`), the reference for the GGUF vocabulary tests:
//   node hf_tokenize.mjs REQUEST.json   {"tokenizer": DIR, "texts": [...]}
// prints {"tokens": [[ids] per text]} (no special tokens added; special tokens
// in the text are parsed as such).
import fs from "node:fs";
import path from "node:path";
import {Tokenizer} from "@huggingface/tokenizers";

const request = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const read = (name) => JSON.parse(fs.readFileSync(path.join(request.tokenizer, name), "utf8"));
const tokenizer = new Tokenizer(read("tokenizer.json"), read("tokenizer_config.json"));
const tokens = request.texts.map((t) => Array.from(tokenizer.encode(t, {add_special_tokens: false}).ids));
process.stdout.write(JSON.stringify({tokens}) + "\n");
