"""Settings, built once per runtime from the environment and passed down.

One model per runtime: the app's `web.settings.AppSettings` (its sections: `QueueSettings`,
`council.CouncilSettings`, `web.settings.ServerSettings`) and the worker's
`voice_worker.settings.WorkerSettings` (its section: `QueueSettings`). Each is a pydantic-settings
model under the rules of `EnvSettings`, the same for every variable:

- Built in code (`QueueSettings(redis_url=..., retries=1)`), a model reads no environment at all:
  `from_env(environ)` is the one place that reads one, the mapping it is given.
- A field reads `<env_prefix><FIELD>`, or the variables its `validation_alias` names, in order.
- A variable set to the empty string is unset: the default holds (compose passes `${NAME:-}`).
- Booleans are 1, true, yes, on or 0, false, no, off, in any case; lists are comma-separated.
- A value that does not fit raises SettingsError, naming the variable and what it expects.
"""

import errno
import os
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.connection
from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._env import EnvSettings, SettingsError

SPEECH = "speech"
REALTIME = "realtime"
BATCH = "batch"
LISTEN = "listen"
LLM = "llm"
CERT_REQS = ("none", "optional", "required")


# Errors that mean Redis is down or out of reach (not that it refused us).
UNREACHABLE_ERRNOS = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT)


def _unreachable(exc: redis.exceptions.RedisError) -> bool:
    cause = exc.__context__
    if isinstance(exc, redis.exceptions.TimeoutError) or isinstance(cause, (TimeoutError, socket.gaierror)):
        return True
    return isinstance(cause, OSError) and cause.errno in UNREACHABLE_ERRNOS


class QueueSettings(EnvSettings):
    """Everything the shared layer needs; each field reads `COUNCIL_<FIELD>` from the environment."""

    model_config = SettingsConfigDict(env_prefix="COUNCIL_")

    # `redis://[:password@]host:port/db`, `rediss://` for TLS, or `unix://`. The URL may carry
    # redis-py's options as query parameters (`?ssl_ca_certs=/ca.pem&ssl_cert_reqs=required`).
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", validation_alias=AliasChoices("COUNCIL_REDIS_URL", "REDIS_URL"), repr=False
    )
    # A password kept out of the URL (a Kubernetes secret), and TLS files for `rediss://`: the CA
    # that signed the server's certificate, and a client certificate and key for `tls-auth-clients`.
    redis_password: str | None = Field(default=None, repr=False)
    redis_ssl_ca_certs: str | None = None
    redis_ssl_certfile: str | None = None
    redis_ssl_keyfile: str | None = None
    # Queues, in the order workers serve them: the sentences of turns already under way, new
    # interactive work (a voice turn's transcription, /api/speech), bulk transcription.
    speech_queue: str = SPEECH
    realtime_queue: str = REALTIME
    batch_queue: str = BATCH
    # Generation with the workers' language models (`generation` jobs): served only by workers that
    # name it in WORKER_QUEUES (they load the model), before `batch`.
    llm_queue: str = LLM
    # Streamed microphones (`listen` jobs): taken by workers' listeners, beside the queues above.
    listen_queue: str = LISTEN
    # A microphone stream's frames wait in Redis at most this long for a listener.
    mic_ttl_s: int = 120
    # Audio blobs (users' uploads, synthesized clips) live this long, and no larger than this.
    blob_ttl_s: int = 3600
    blob_max_bytes: int = 64 * 1024 * 1024
    # Per-session event streams: capped in length (every token of an answer is an event: 20,000
    # hold dozens of long turns), expire when a session goes quiet. A client that resumes from
    # before what the cap kept is told (`events_trimmed`), never silently given less.
    stream_maxlen: int = 20_000
    stream_ttl_s: int = 24 * 3600
    # RQ: how long results and failures are kept, and how long each job type may run.
    result_ttl_s: int = 3600
    failure_ttl_s: int = 7 * 24 * 3600
    transcribe_timeout_s: int = 600
    synthesize_timeout_s: int = 60
    generate_timeout_s: int = 300
    retries: int = 2
    # Fair share (queues/fair.py): jobs one user, or one session, may have waiting in the job queues
    # at once (more are refused: RateLimited, HTTP 429), and running at once (more wait their turn
    # while others' jobs run). 0: no limit.
    max_queued_per_user: int = Field(default=1000, ge=0)
    max_queued_per_session: int = Field(default=500, ge=0)
    max_running_per_user: int = Field(default=0, ge=0)
    max_running_per_session: int = Field(default=0, ge=0)
    # Prefix for every key this project owns (RQ keeps its own `rq:` keys).
    key_prefix: str = "council"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        settings = super().from_env(environ)
        settings.check()
        return settings

    def check(self) -> None:
        """Raise SettingsError, naming the variable, for a Redis setting that cannot work."""
        url = self.redis_url
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(
                f"COUNCIL_REDIS_URL must start with redis://, rediss:// or unix://, got {self.safe_url!r}"
            )
        try:
            options = redis.connection.parse_url(url)
        except ValueError as exc:
            raise SettingsError(f"COUNCIL_REDIS_URL={self.safe_url!r} is malformed: {exc}") from None
        if self.redis_password and options.get("password"):
            raise SettingsError("Give the Redis password in COUNCIL_REDIS_URL or in COUNCIL_REDIS_PASSWORD, not both.")
        reqs = options.get("ssl_cert_reqs")
        if reqs is not None and str(reqs).lower() not in CERT_REQS:
            raise SettingsError(
                f"ssl_cert_reqs in COUNCIL_REDIS_URL must be one of {', '.join(CERT_REQS)}, got {reqs!r}"
            )
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, f"redis_{name}")
            if value is None:
                continue
            var = f"COUNCIL_REDIS_{name.upper()}"
            if not url.startswith("rediss://"):
                raise SettingsError(f"{var} is set, but COUNCIL_REDIS_URL is not a TLS URL (rediss://).")
            if name in options:
                raise SettingsError(f"Give {name} in COUNCIL_REDIS_URL or in {var}, not both.")
            if not Path(value).is_file():
                raise SettingsError(f"{var}={value!r}: no such file.")

    @property
    def safe_url(self) -> str:
        """The Redis URL with its password hidden, for messages and logs."""
        parts = urlsplit(self.redis_url)
        if parts.password is None:
            return self.redis_url
        user = parts.username or ""
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))

    def redis_options(self) -> dict[str, Any]:
        """What the client needs beyond the URL (the URL's own options win in redis-py)."""
        options: dict[str, Any] = {"health_check_interval": 30}
        if self.redis_password:
            options["password"] = self.redis_password
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, f"redis_{name}")
            if value:
                options[name] = value
        return options

    def check_credentials(self) -> None:
        """Connect once, at start: raise SettingsError when Redis answers but refuses these settings
        (a wrong or missing password, a TLS certificate that does not verify), which waiting cannot
        fix. A Redis that is down or unreachable passes: callers wait for it as for any outage."""
        # TLS 1.3 refuses a client certificate after the handshake, and the server's reset can
        # swallow its alert (about one time in two): a reset over TLS is asked again, for the alert.
        tries = 16 if self.redis_url.startswith("rediss://") else 1
        options = {
            **self.redis_options(),
            "socket_connect_timeout": 5,
            "socket_timeout": 5,
            "retry": Retry(NoBackoff(), 0),
        }
        for _ in range(tries):
            connection = redis.Redis.from_url(self.redis_url, **options)
            try:
                connection.ping()
                return
            except redis.exceptions.AuthenticationError as exc:
                raise SettingsError(
                    f"Redis at {self.safe_url} refused the credentials ({exc}): check the password in "
                    "COUNCIL_REDIS_URL (redis://:PASSWORD@host) or COUNCIL_REDIS_PASSWORD."
                ) from None
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                if isinstance(exc.__context__, ssl.SSLError):
                    raise SettingsError(
                        f"The TLS handshake with Redis at {self.safe_url} failed ({exc.__context__}): check "
                        "COUNCIL_REDIS_SSL_CA_CERTS (the CA that signed the server's certificate), and "
                        "COUNCIL_REDIS_SSL_CERTFILE and COUNCIL_REDIS_SSL_KEYFILE when the server asks clients for one."
                        + _strict_hint(exc.__context__)
                    ) from None
                if _unreachable(exc):
                    return  # down or unreachable: the outage path waits for it
            finally:
                connection.close()
        if tries > 1:  # reached over TLS and closed on every try, without saying why: a refusal
            raise SettingsError(
                f"Redis at {self.safe_url} closed the TLS connection on every try: it likely wants a client "
                "certificate: set COUNCIL_REDIS_SSL_CERTFILE and COUNCIL_REDIS_SSL_KEYFILE (the TLS handshake "
                "did not complete), and check COUNCIL_REDIS_SSL_CA_CERTS."
            )

    @property
    def queue_names(self) -> tuple[str, str, str, str]:
        """The job queues, in priority order: a worker finishes speaking turns under way before it
        starts new work, and answers conversations before bulk transcription."""
        return (self.speech_queue, self.realtime_queue, self.llm_queue, self.batch_queue)

    @property
    def all_queue_names(self) -> tuple[str, ...]:
        """Every queue: the job queues, then the listeners' queue."""
        return (*self.queue_names, self.listen_queue)

    def wake_key(self, queue: str) -> str:
        """One token per job enqueued on `queue`: what idle workers that serve it block on (see
        voice_worker/inflight.py). One list per queue: a worker never takes the token of a job it
        does not serve (with one list, an LLM-only worker took a transcription's token half the
        time, and the voice worker found its job only when its wait ran out, up to 1 s later)."""
        return f"{self.key_prefix}:wake:{queue}"

    def cancel_key(self, job_id: str) -> str:
        """Set while someone asks a running job to stop: a job worked in pieces stops at the end of
        the piece it is on (see voice_worker/transcription.py)."""
        return f"{self.key_prefix}:cancel:{job_id}"

    def connect(self) -> redis.Redis:
        """A blocking client (RQ needs one that returns bytes)."""
        return redis.Redis.from_url(self.redis_url, **self.redis_options())

    def connect_async(self) -> redis.asyncio.Redis:
        return redis.asyncio.Redis.from_url(self.redis_url, **self.redis_options())


def _strict_hint(error: ssl.SSLError) -> str:
    """Python 3.13 verifies strictly (VERIFY_X509_STRICT): a CA certificate made without a
    keyUsage extension (openssl's default for `req -x509`) is refused, though 3.11 took it."""
    text = str(error).lower()
    if "key usage" not in text and "basic constraints" not in text:
        return ""
    return (
        " Python 3.13 refuses a CA certificate without keyUsage (or with non-critical basicConstraints): "
        "make the CA again with `-addext basicConstraints=critical,CA:TRUE "
        "-addext keyUsage=critical,keyCertSign,cRLSign`."
    )
