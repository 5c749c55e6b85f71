"""`make dashboard`: rq-dashboard (RQ's web UI: queues, workers, failed jobs and their errors) for
the Redis the app and workers use, on http://127.0.0.1:9181.

Why a script and not one line in the Makefile: the Redis comes from the same settings as the rest
(COUNCIL_REDIS_URL, COUNCIL_REDIS_PASSWORD, the TLS files), checked with the same messages; secrets
go to rq-dashboard through its environment (RQ_DASHBOARD_*), never its command line, where `ps`
shows them; and it refuses to listen beyond this machine without a password.

  DASHBOARD_PORT (9181), DASHBOARD_BIND (127.0.0.1),
  RQ_DASHBOARD_PASSWORD (basic auth when set), RQ_DASHBOARD_USERNAME (admin)

`--json` is always on: Council's jobs are JSON (RQ's JSONSerializer), and without it
rq-dashboard's job pages answer 500.
"""

import ipaddress
import os
import sys
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from queues import QueueSettings, SettingsError


def dashboard_url(settings: QueueSettings) -> str:
    """The Redis URL with the password and TLS files the settings keep beside it folded in."""
    parts = urlsplit(settings.redis_url)
    if settings.redis_password:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{quote(parts.username or '')}:{quote(settings.redis_password, safe='')}@{host}")
    query = dict(parse_qsl(parts.query))
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if value := getattr(settings, f"redis_{name}"):
            query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> int:
    try:
        settings = QueueSettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"make dashboard: {exc}", file=sys.stderr)
        return 2
    bind = os.environ.get("DASHBOARD_BIND", "127.0.0.1")
    port = os.environ.get("DASHBOARD_PORT", "9181")
    env = {**os.environ, "RQ_DASHBOARD_REDIS_URL": dashboard_url(settings)}
    if env.get("RQ_DASHBOARD_PASSWORD"):
        env.setdefault("RQ_DASHBOARD_USERNAME", "admin")
    elif not loopback(bind):
        print(
            f"make dashboard: DASHBOARD_BIND={bind} would open the dashboard (which can delete and requeue jobs) "
            "to the network with no password: set RQ_DASHBOARD_PASSWORD (and RQ_DASHBOARD_USERNAME), "
            "or keep it on 127.0.0.1 and reach it through an SSH tunnel.",
            file=sys.stderr,
        )
        return 2
    else:
        env.pop("RQ_DASHBOARD_USERNAME", None)  # a user with no password would lock everyone out
    auth = f", user {env['RQ_DASHBOARD_USERNAME']}" if env.get("RQ_DASHBOARD_PASSWORD") else ", no password"
    host = f"[{bind}]" if ":" in bind else bind
    print(f"rq-dashboard for {settings.safe_url} on http://{host}:{port}/{auth} (Ctrl-C stops it)", flush=True)
    program = Path(sys.executable).parent / "rq-dashboard"
    os.execve(program, [str(program), "--json", "--bind", bind, "--port", port], env)


if __name__ == "__main__":
    sys.exit(main())
