"""`python -m voice_worker`: start one voice worker (one per GPU, or per CPU worker slot)."""

import argparse
import sys

from queues import SettingsError
from queues.logs import configure_logging

from .engines import load_engines
from .errors import EngineLoadError
from .settings import WorkerSettings
from .worker import VoiceWorker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voice_worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    parser.add_argument("--no-engines", action="store_true", help="serve only ping jobs (benchmarks)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        settings = WorkerSettings.from_env()
        engines = None if args.no_engines else load_engines(settings)
    except (SettingsError, EngineLoadError) as exc:
        print(f"voice_worker: cannot start: {exc}", file=sys.stderr)
        return 2
    worker = VoiceWorker(settings, engines)
    worker.work(burst=args.burst, logging_level=args.log_level, with_scheduler=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
