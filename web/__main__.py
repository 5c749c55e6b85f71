"""`python -m web`: serve the app with uvicorn, logging JSON lines (see `queues.logs`)."""

import argparse
import os
import sys

import uvicorn

from queues import SettingsError
from queues.logs import configure_logging

from .app import create_app
from .settings import AppSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m web")
    parser.add_argument("--host", default=os.environ.get("COUNCIL_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("COUNCIL_PORT", "8000")))
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    configure_logging(args.log_level)
    try:
        settings = AppSettings.from_env()
        settings.queues.check_credentials()
    except SettingsError as exc:
        sys.exit(f"web: cannot start: {exc}")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
