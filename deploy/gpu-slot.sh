#!/usr/bin/env bash
# gpu-slot COMMAND...: give this worker a GPU of its own, then exec COMMAND.
#
# Docker does not share GPUs out among the replicas of `docker compose up --scale worker=N`: every
# replica asking for one GPU gets the same first GPU. So the compose worker sees all the GPUs and
# each replica takes a slot here instead: the first slot whose lock file (on a volume all replicas
# share) no other live worker holds. Slot i runs on GPU i % GPU_SLOTS. The lock is an open file
# descriptor that COMMAND inherits, so it is released only when the worker process ends.
#
#   GPU_SLOTS         GPUs on this machine (unset: no slot taken, COMMAND runs as is, as on
#                     Kubernetes, where the device plugin gives each pod its own GPU)
#   WORKERS_PER_GPU   workers that share one GPU (default 1)
#   GPU_LOCK_DIR      the shared lock directory (default /var/lock/council-gpu)
set -euo pipefail
gpus=${GPU_SLOTS:-}
if [[ -z $gpus ]]; then
  exec "$@"
fi
per=${WORKERS_PER_GPU:-1}
if ! [[ $gpus =~ ^[1-9][0-9]*$ && $per =~ ^[1-9][0-9]*$ ]]; then
  echo "gpu-slot: GPU_SLOTS and WORKERS_PER_GPU must be positive integers, got '$gpus' and '$per'" >&2
  exit 2
fi
dir=${GPU_LOCK_DIR:-/var/lock/council-gpu}
mkdir -p "$dir"
slots=$((gpus * per))
for ((slot = 0; slot < slots; slot++)); do
  exec 9>"$dir/slot$slot.lock"
  if flock --nonblock 9; then
    export CUDA_VISIBLE_DEVICES=$((slot % gpus))
    echo "gpu-slot: slot $slot of $slots: this worker runs on GPU $CUDA_VISIBLE_DEVICES" >&2
    exec "$@"
  fi
  exec 9>&-
done
echo "gpu-slot: all $slots slots ($gpus GPUs x $per workers) are taken; run at most $slots workers" \
  "(--scale worker=$slots) or raise GPU_SLOTS / WORKERS_PER_GPU" >&2
exit 1
