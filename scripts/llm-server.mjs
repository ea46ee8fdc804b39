// A small OpenAI-compatible server (POST /v1/chat/completions, non-streaming)
// around node-llama-cpp and a local GGUF model, for trying SecondMe with a real
// model offline. Install both with scripts/llm-local.sh, then:
//   node scripts/llm-server.mjs [--port 8181] [--threads 1] [--model .venv/llm/SmolLM2-135M-Instruct.Q4_1.gguf]
// Requests are answered one at a time (one context on the CPU).
import http from "node:http";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
};
const port = Number(arg("port", process.env.LLM_SERVER_PORT ?? "8181"));
const modelPath = path.resolve(arg("model", path.join(root, ".venv/llm/SmolLM2-135M-Instruct.Q4_1.gguf")));
const modules = path.join(root, ".venv/llm/node_modules/");
const { getLlama, LlamaChatSession } = await import(
  createRequire(modules).resolve("node-llama-cpp")
);

// Threads: node-llama-cpp defaults to at least 4, and its math threads spin while
// they wait: on a small or shared CPU more threads than free cores make every
// token many times slower, so one thread unless told otherwise.
const threads = Number(arg("threads", process.env.LLM_SERVER_THREADS ?? "1"));
if (!Number.isInteger(threads) || threads < 1) {
  console.error(`llm-server: --threads must be a whole number of at least 1, not ${JSON.stringify(String(arg("threads", process.env.LLM_SERVER_THREADS ?? "")))}`);
  process.exit(2);
}
const llama = await getLlama({ gpu: false, build: "never", maxThreads: threads });
const model = await llama.loadModel({ modelPath });
const modelName = path.basename(modelPath);
console.log(`llm-server: ${modelName} on http://127.0.0.1:${port}`);

// One generation at a time: requests wait in this chain.
let chain = Promise.resolve();

async function complete(body, signal) {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const text = (m) => (typeof m.content === "string" ? m.content : "");
  const last = messages.length > 0 ? messages[messages.length - 1] : null;
  if (!last || last.role !== "user") throw new Error("the last message must be the user's");
  const history = messages.slice(0, -1).map((m) =>
    m.role === "system"
      ? { type: "system", text: text(m) }
      : m.role === "assistant"
        ? { type: "model", response: [text(m)] }
        : { type: "user", text: text(m) },
  );
  // A fresh context per request: nothing of one conversation leaks into the next,
  // and no session state outlives its request.
  const context = await model.createContext({ contextSize: 2048 });
  try {
    return await generate(context, body, messages, history, text, last, signal);
  } finally {
    await context.dispose();
  }
}

async function generate(context, body, messages, history, text, last, signal) {
  const session = new LlamaChatSession({ contextSequence: context.getSequence() });
  session.setChatHistory(history);
  const maxTokens = Number.isInteger(body.max_tokens) ? body.max_tokens : 128;
  let stop = "stop";
  const answer = await session.prompt(text(last), {
    maxTokens,
    temperature: typeof body.temperature === "number" ? body.temperature : 0.7,
    signal,
  });
  const promptTokens = messages.reduce((n, m) => n + model.tokenize(text(m)).length, 0);
  const completionTokens = model.tokenize(answer).length;
  if (completionTokens >= maxTokens) stop = "length";
  return {
    id: `chatcmpl-${Date.now()}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: body.model ?? modelName,
    choices: [{ index: 0, message: { role: "assistant", content: answer }, finish_reason: stop }],
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
  };
}

function send(res, status, payload) {
  const data = JSON.stringify(payload);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
  res.end(data);
}

http
  .createServer((req, res) => {
    if (req.method === "GET" && req.url === "/v1/models") {
      return send(res, 200, { object: "list", data: [{ id: modelName, object: "model" }] });
    }
    if (req.method !== "POST" || req.url !== "/v1/chat/completions") {
      return send(res, 404, { error: { message: "not found", type: "invalid_request_error" } });
    }
    let raw = "";
    req.setEncoding("utf8");
    req.on("data", (c) => {
      raw += c;
      if (raw.length > 1 << 20) req.destroy();
    });
    req.on("end", () => {
      let body;
      try {
        body = JSON.parse(raw);
      } catch {
        return send(res, 400, { error: { message: "invalid JSON", type: "invalid_request_error" } });
      }
      // A client that gives up (the worker cancels a reply a newer message
      // supersedes, or a pause) frees the CPU: its turn is skipped, or its
      // generation stopped, instead of queueing work nobody will read.
      const gone = new AbortController();
      res.on("close", () => {
        if (!res.writableEnded) gone.abort(new Error("the client went away"));
      });
      chain = chain
        .then(() => (gone.signal.aborted ? null : complete(body, gone.signal)))
        .then((out) => out && send(res, 200, out))
        .catch((e) => {
          if (!gone.signal.aborted) {
            send(res, 400, { error: { message: String(e.message ?? e), type: "invalid_request_error" } });
          }
        });
    });
  })
  .listen(port, "127.0.0.1");
