#!/usr/bin/env bash
# Put the GPU engines' models into MODEL_DIR, in the layout the worker loads (see deploy/README.md):
#
#   MODEL_DIR/parakeet/parakeet-tdt-0.6b-v2.nemo        speech to text (NeMo Parakeet TDT, CC-BY-4.0)
#   MODEL_DIR/coqui/config.json, model.pth|model_file.pth, speakers (ids or XTTS latents),
#                  voices.json                            text to speech (Coqui), council voice -> speaker
#
# For operators, on a machine that can download; never run by the tests. Safe to run again: a file
# already there with the expected size is kept. Downloads go to NAME.part first, resume, and are
# moved in place only when their size is right.
#
#   deploy/fetch-models.sh [MODEL_DIR]                    # default ./models, or $MODEL_DIR
#   COQUI_MODEL=xtts COQUI_TOS_AGREED=1 deploy/fetch-models.sh /srv/council/models
#
#   COQUI_MODEL   vctk (default: VITS, 109 English speakers, about 150 MB)
#                 xtts (XTTS v2: better, streams, about 1.9 GB; Coqui Public Model License,
#                 non-commercial: set COQUI_TOS_AGREED=1 to accept it)
#                 none (skip Coqui)
#   PARAKEET      1 (default) or 0 to skip Parakeet
set -euo pipefail

model_dir=${1:-${MODEL_DIR:-./models}}
coqui_model=${COQUI_MODEL:-vctk}
parakeet=${PARAKEET:-1}
HF=https://huggingface.co
PARAKEET_NAME=parakeet-tdt-0.6b-v2
VCTK_ZIP=https://github.com/coqui-ai/TTS/releases/download/v0.6.1_models/tts_models--en--vctk--vits.zip

command -v curl >/dev/null || { echo "fetch-models: curl is needed" >&2; exit 1; }
mkdir -p "$model_dir"
model_dir=$(cd "$model_dir" && pwd)
did=()

size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

# The size the server announces for URL (after redirects), or empty when it says none.
remote_size() {
  curl -fsSIL "$1" | tr -d '\r' | awk 'tolower($1) == "content-length:" { n = $2 } END { if (n > 0) print n }'
}

# fetch URL DEST MIN_BYTES: download unless DEST is there with the announced size (or, when the
# server announces none, at least MIN_BYTES).
fetch() {
  local url=$1 dest=$2 min=$3 want have
  want=$(remote_size "$url" || true)
  have=$(size_of "$dest")
  if [[ -f $dest ]] && { [[ -n $want && $have == "$want" ]] || [[ -z $want && $have -ge $min ]]; }; then
    echo "kept       $dest ($have bytes)"
    return
  fi
  echo "fetching   $url"
  mkdir -p "$(dirname "$dest")"
  curl -fL --retry 5 --retry-delay 5 -C - -o "$dest.part" "$url"
  have=$(size_of "$dest.part")
  if [[ -n $want && $have != "$want" ]] || ((have < min)); then
    echo "fetch-models: $dest.part has $have bytes, expected ${want:-at least $min}; run again to resume" >&2
    exit 1
  fi
  mv -f "$dest.part" "$dest"
  echo "placed     $dest ($have bytes)"
  did+=("$dest")
}

write_voices() {  # write_voices FILE JSON: the council voice -> speaker map, unless one is there
  if [[ -f $1 ]]; then
    echo "kept       $1 (yours: edit it to change who speaks as whom)"
  else
    printf '%s\n' "$2" >"$1"
    echo "placed     $1"
    did+=("$1")
  fi
}

if [[ $parakeet == 1 ]]; then
  fetch "$HF/nvidia/$PARAKEET_NAME/resolve/main/$PARAKEET_NAME.nemo" \
    "$model_dir/parakeet/$PARAKEET_NAME.nemo" $((2000 * 1024 * 1024))
  others=$(find "$model_dir/parakeet" -maxdepth 1 -name '*.nemo' ! -name "$PARAKEET_NAME.nemo" | wc -l)
  if ((others)); then
    echo "note: $model_dir/parakeet holds other .nemo files too; the worker wants exactly one (or PARAKEET_MODEL)" >&2
  fi
fi

# The council's voices (council/members.toml and the CPU worker's names) spoken by model speakers.
case $coqui_model in
  vctk)
    coqui=$model_dir/coqui
    if [[ -f $coqui/config.json && -f $coqui/model_file.pth && $(size_of "$coqui/model_file.pth") -ge $((100 * 1024 * 1024)) ]]; then
      echo "kept       $coqui (VITS VCTK)"
    else
      tmp=$(mktemp -d)
      trap 'rm -rf "$tmp"' EXIT
      fetch "$VCTK_ZIP" "$tmp/vctk.zip" $((100 * 1024 * 1024))
      command -v unzip >/dev/null || { echo "fetch-models: unzip is needed" >&2; exit 1; }
      unzip -q -o "$tmp/vctk.zip" -d "$tmp/x"
      src=$(dirname "$(find "$tmp/x" -name config.json | head -n 1)")
      mkdir -p "$coqui"
      for f in config.json model_file.pth speaker_ids.json speakers.json; do
        if [[ -f $src/$f ]]; then
          cp -f "$src/$f" "$coqui/$f"
          echo "placed     $coqui/$f"
          did+=("$coqui/$f")
        fi
      done
    fi
    write_voices "$coqui/voices.json" \
      '{"max": "p226", "ada": "p225", "iris": "p228", "angus": "p237", "leon": "p232", "joe": "p243"}'
    ;;
  xtts)
    if [[ ${COQUI_TOS_AGREED:-} != 1 ]]; then
      echo "fetch-models: XTTS v2 is under the Coqui Public Model License (non-commercial):" \
        "https://coqui.ai/cpml; set COQUI_TOS_AGREED=1 to accept it" >&2
      exit 1
    fi
    coqui=$model_dir/coqui
    base=$HF/coqui/XTTS-v2/resolve/main
    fetch "$base/config.json" "$coqui/config.json" 1000
    fetch "$base/vocab.json" "$coqui/vocab.json" 100000
    fetch "$base/speakers_xtts.pth" "$coqui/speakers_xtts.pth" 1000000
    fetch "$base/model.pth" "$coqui/model.pth" $((1500 * 1024 * 1024))
    mkdir -p "$coqui/voices"  # add NAME.wav reference clips here to clone more voices
    write_voices "$coqui/voices.json" \
      '{"max": "Damien Black", "ada": "Claribel Dervla", "iris": "Gracie Wise", "angus": "Craig Gutsy", "leon": "Viktor Eka", "joe": "Andrew Chipper"}'
    ;;
  none) ;;
  *)
    echo "fetch-models: COQUI_MODEL must be vctk, xtts or none, not '$coqui_model'" >&2
    exit 2
    ;;
esac

echo
if ((${#did[@]})); then
  echo "fetch-models: placed ${#did[@]} file(s) under $model_dir"
else
  echo "fetch-models: nothing to do; every model under $model_dir is in place"
fi
echo "Mount it read-only at /models (compose: MODEL_DIR=$model_dir in deploy/.env)."
