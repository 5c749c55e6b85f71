"""`python -m voice_worker`: start one voice worker (one per GPU, or per CPU worker slot).

The process started is a supervisor (`supervisor.py`) that runs the worker itself as its child
(`--child`) and restarts or replaces it when it dies or gets stuck; `--no-supervisor` runs the
worker in this process instead.
"""

import argparse
import os
import sys
from typing import NoReturn


def stopped_while_starting() -> NoReturn:
    """Ctrl-C before the worker serves (`make run` stopped while it loads): a stop, not a crash."""
    print("voice_worker: stopped while starting", file=sys.stderr)
    sys.exit(130)


try:  # seconds of imports on a busy machine (rq, pydantic, the engines' modules)
    from queues import SettingsError, configure_logging

    from .engines import load_engines
    from .errors import EngineLoadError
    from .settings import WorkerSettings
    from .supervisor import CANNOT_START, Supervisor, die_with_parent
    from .worker import VoiceWorker
except KeyboardInterrupt:
    stopped_while_starting()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voice_worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    parser.add_argument("--no-engines", action="store_true", help="serve only ping jobs (benchmarks)")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--no-supervisor", action="store_true", help="run the worker in this process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    configure_logging(args.log_level)
    try:
        settings = WorkerSettings.from_env()
        settings.queues.check_credentials()
        if not (args.child or args.no_supervisor):
            forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--no-supervisor"]
            return Supervisor(settings, forwarded).run()
        if args.child:
            die_with_parent()
        engines = None if args.no_engines else load_engines(settings)
    except (SettingsError, EngineLoadError) as exc:
        print(f"voice_worker: cannot start: {exc}", file=sys.stderr)
        return CANNOT_START
    except KeyboardInterrupt:  # while the models load
        stopped_while_starting()
    # Handed down by the supervisor (see supervisor.py).
    report_fd = int(os.environ["WORKER_REPORT_FD"]) if args.child and os.environ.get("WORKER_REPORT_FD") else None
    adopt = os.environ.get("WORKER_ADOPT") or None if args.child else None
    try:
        worker = VoiceWorker(settings, engines, report_fd=report_fd, adopt=adopt)
        worker.work(burst=args.burst, logging_level=args.log_level, with_scheduler=False)
    finally:
        if engines is not None:  # loaded here, closed here: the worker and its listeners have stopped
            engines.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
