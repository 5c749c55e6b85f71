#!/usr/bin/env bash
# Fill .whl/ with what the GPU machine (Python 3.12, torch 2.11+cu130, no network) lacks for
# `python -m bench.gpu.run`: wheels for Python 3.12 manylinux x86_64, --no-deps each, versions from
# requirements/worker-gpu.lock; Debian's redis-server, unpacked; a speech clip made with flite; and
# the Smart Turn model taken out of the pipecat-ai wheel. Run here (pip reaches PyPI), from anywhere.
#
#   bench/gpu/wheels.sh            # then: du -sh .whl  (fails above LIMIT_MIB, 60 by default)
#
# Left out on purpose, the machine has them (/work/.library/device/KINDS.md): torch, torchaudio,
# numpy, scipy, numba, transformers, tokenizers, sentencepiece, onnx, onnxruntime, pytorch-lightning,
# lightning-utilities, torchmetrics, huggingface-hub, pandas, pyarrow, pyyaml, ... And the CPU
# engines' packages (faster-whisper with ctranslate2 and PyAV, piper-tts: ~80 MB), which a Parakeet +
# Coqui worker never imports (voice_worker/engines.py imports an engine's package when it builds it).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/.whl
LOCK=$ROOT/requirements/worker-gpu.lock
LIMIT_MIB=${LIMIT_MIB:-60}
PIP=${PIP:-"$ROOT/.venv-worker/bin/python -m pip"}
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")" "$OUT"
grep -qx '/.whl/' "$EXCLUDE" 2>/dev/null || echo '/.whl/' >>"$EXCLUDE"

# What the worker imports with STT_ENGINE=parakeet, TTS_ENGINE=coqui, silero-vad and Smart Turn,
# and the machine lacks (read off the import closure of such a worker, 2026-12-02).
PACKAGES=(
  # ours: the transport and the worker
  rq redis hiredis pydantic pydantic-core annotated-types typing-inspection pydantic-settings python-dotenv
  soundfile cffi soxr silero-vad
  # librosa at run time
  decorator platformdirs pooch
  # coqui-tts and what it imports
  coqui-tts coqui-tts-trainer coqpit-config anyascii num2words ko-speech-tools librosa
  # nemo-toolkit's ASR collection and what it imports
  nemo-toolkit hydra-core omegaconf antlr4-python3-runtime lhotse intervaltree cytoolz kaldialign braceexpand
  webdataset datasets dill multiprocess toml overrides strenum truststore sniffio
  nv-one-logger-core nv-one-logger-training-telemetry nv-one-logger-pytorch-lightning-integration
  opentelemetry-api opentelemetry-sdk opentelemetry-proto opentelemetry-semantic-conventions
  opentelemetry-exporter-otlp-proto-common opentelemetry-exporter-otlp-proto-http
  opentelemetry-exporter-http-transport opentelemetry-exporter-otlp-common googleapis-common-protos
  httpx2 httpcore2
  # NeMo 3.0 wants lightning <= 2.4.0; the machine's may be newer
  lightning
  # coqui-tts refuses to import without torchcodec beside torch >= 2.9 (it only looks for it: the
  # engine reads audio with soundfile); the release built for the machine's torch 2.11
  torchcodec==0.11.0
  # EXTRA="transformers==5.23.0" carries the locked transformers too (11 MB), should the machine's fail
  ${EXTRA:-}
)
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64
  --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64)

locked() {  # NAME -> NAME==VERSION from the lock (NAME alone when the lock lacks it)
  local line
  line=$(grep -m1 -i -E "^$1==" "$LOCK" | cut -d' ' -f1 || true)
  echo "${line:-$1}"
}

for name in "${PACKAGES[@]}"; do
  spec=$name
  case $name in *==*) name=${name%%==*} ;; *) spec=$(locked "$name") ;; esac
  stem=$(echo "${name}" | tr '-' '_')
  if ls "$OUT" | grep -qi -E "^${stem}-[0-9]"; then continue; fi
  if ! $PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$OUT" "$spec" 2>/dev/null; then
    echo "no wheel for $spec: building one (pure Python)" >&2
    $PIP wheel -q --no-deps --no-build-isolation -w "$OUT" "$spec" 2>/dev/null || $PIP wheel -q --no-deps -w "$OUT" "$spec"
  fi
done

# redis-server from Debian, unpacked: the binary (Debian ships it as redis-check-rdb, which serves
# when named redis-server) and the libraries it links that a CUDA image may lack, in .whl/lib
# (bench/gpu/run.py puts that folder on its LD_LIBRARY_PATH).
if [ ! -x "$OUT/redis-server" ]; then
  work=$(mktemp -d)
  (cd "$work" && apt-get download redis-server redis-tools liblzf1 libjemalloc2 libatomic1 libsystemd0 >/dev/null \
    && for f in *.deb; do dpkg -x "$f" x; done)
  mkdir -p "$OUT/lib"
  cp "$work/x/usr/bin/redis-check-rdb" "$OUT/redis-server"
  cp -L "$work"/x/usr/lib/x86_64-linux-gnu/{liblzf.so.1,libjemalloc.so.2,libatomic.so.1,libsystemd.so.0} "$OUT/lib/"
  rm -rf "$work"
fi

# A question spoken by flite (16 kHz, mono): the GPU machine has no speech synthesizer to make one.
if [ ! -f "$OUT/speech.wav" ]; then
  flite -voice slt -t "please summarize the main risks of this plan for me" -o "$OUT/speech.wav"
fi

# Smart Turn v3.2 (8.7 MB), out of the pipecat-ai wheel: the worker reads it from TURN_MODEL.
if [ ! -f "$OUT/smart-turn-v3.2-cpu.onnx" ]; then
  work=$(mktemp -d)
  $PIP download -q --no-deps --only-binary=:all: -d "$work" "$(locked pipecat-ai)"
  unzip -p "$work"/pipecat_ai-*.whl 'pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx' \
    >"$OUT/smart-turn-v3.2-cpu.onnx"
  rm -rf "$work"
fi

# One version of each: two stop the whole install there.
dupes=$(ls "$OUT"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z' 'a-z' | sort | uniq -d)
[ -z "$dupes" ] || { echo "two versions of: $dupes" >&2; exit 1; }

ls -l "$OUT" | awk 'NR>1 {printf "%8.2f MiB  %s\n", $5/1048576, $9}' | sort -rn
total=$(du -sb "$OUT" | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
printf 'total %.1f MiB in .whl (the working tree adds %.1f MiB; a call carries at most 64)\n' \
  "$(echo "$total / 1048576" | bc -l)" "$(echo "$tree / 1048576" | bc -l)"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "over $LIMIT_MIB MiB" >&2
  exit 1
fi
