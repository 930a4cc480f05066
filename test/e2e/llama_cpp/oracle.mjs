// The llama.cpp oracle of the GGUF tests: real llama.cpp through node-llama-cpp
// (its prebuilt CPU binaries, installed by install.sh), driven by one JSON request:
//   {"model": BASE.gguf, "lora": ADAPTER.gguf | null, "sequences": [[ids]], "texts": [strings], "vocabOnly": bool}
// and answering one JSON object on stdout:
//   {"logprobs": [[log p(ids[t+1] | ids[..t]) for t = 0..T-2] per sequence],
//    "argmax": [[most likely next token per position]], "vocab": n,
//    "tokens": [[ids of each text, special tokens parsed, no BOS added]],
//    "addBos": whether llama.cpp prepends "bos" to a prompt}
// The context runs with flash attention off and an F32 KV cache, so the only
// differences from an exact evaluation are llama.cpp's own float32 kernels.
import fs from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const request = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error, progressLogs: false});
const model = await llama.loadModel({modelPath: request.model, vocabOnly: !!request.vocabOnly, gpuLayers: 0});
const out = {};

if (request.texts) {
    out.tokens = request.texts.map((t) => Array.from(model.tokenize(t, true)));
    // Whether llama.cpp adds BOS when it tokenizes a prompt (the GGUF's tokenizer.ggml.add_bos_token), and which.
    out.addBos = model.tokens.shouldPrependBosToken;
    out.bos = model.tokens.bos;
}

if (request.sequences && request.sequences.length) {
    const longest = Math.max(...request.sequences.map((s) => s.length));
    const context = await model.createContext({
        contextSize: Math.max(64, longest + 8),
        batchSize: Math.max(64, longest + 8),
        sequences: 1,
        flashAttention: false,
        experimentalKvCacheKeyType: "F32",
        experimentalKvCacheValueType: "F32",
        lora: request.lora ? {adapters: [{filePath: request.lora, scale: request.loraScale ?? 1}]} : undefined,
    });
    out.logprobs = [];
    out.argmax = [];
    const sequence = context.getSequence();
    for (const ids of request.sequences) {
        await sequence.clearHistory();
        const input = ids.map((id, t) => t + 1 < ids.length
            ? [id, {generateNext: {probabilities: true, options: {temperature: 0}}}]
            : id);
        const res = await sequence.controlledEvaluate(input);
        const lp = [], am = [];
        for (let t = 0; t + 1 < ids.length; ++t) {
            const probs = res[t].next.probabilities;
            out.vocab = probs.size;
            const p = probs.get(ids[t + 1]) ?? 0;
            lp.push(Math.log(p));
            am.push(probs.entries().next().value[0]);
        }
        out.logprobs.push(lp);
        out.argmax.push(am);
    }
    sequence.dispose();
    await context.dispose();
}
await model.dispose();
process.stdout.write(JSON.stringify(out) + "\n");
