"""`python -m voice_worker.say "text" --voice joe --out x.wav`: speak with this machine's offline
engines straight to a WAV file, no Redis and no queue: to hear a voice, or to make test speech
(tests and benchmarks feed it to microphones; Smart Turn hears Piper's natural intonation, where
espeak's and flite's are flat)."""

import argparse
import sys
from pathlib import Path

from .audio import Audio, encode_wav, resample
from .errors import EngineLoadError, VoiceError
from .tts import TTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voice_worker.say", description=__doc__.split("\n\n")[0])
    parser.add_argument("text")
    parser.add_argument(
        "--voice", default="joe", help="joe (Piper), or an espeak-ng voice: max, ada, iris, angus, leon"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rate", type=int, default=None, help="resample to this many Hz (e.g. 16000)")
    args = parser.parse_args(argv)
    try:
        if args.voice == "joe":
            from .tts.piper import PiperTTS, default_model_path

            engine: TTS = PiperTTS(default_model_path())
        else:
            from .tts.espeak import EspeakTTS

            engine = EspeakTTS()
        audio: Audio = engine.synthesize(args.text, args.voice)
    except (EngineLoadError, VoiceError) as exc:
        print(f"say: {exc}", file=sys.stderr)
        return 2
    if args.rate:
        audio = resample(audio, args.rate)
    args.out.write_bytes(encode_wav(audio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
