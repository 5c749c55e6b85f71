"""Redis settings: password and TLS options from the URL or the environment, and clear refusals."""

import pytest
import redis

from queues import QueueSettings, SettingsError


@pytest.fixture
def ca(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("not read here\n")
    return str(path)


def pool_kwargs(settings: QueueSettings) -> dict:
    client = settings.connect()
    try:
        return {**client.connection_pool.connection_kwargs, "class": client.connection_pool.connection_class}
    finally:
        client.close()


def test_a_password_in_the_url_or_its_own_variable_reaches_the_client():
    in_url = QueueSettings.from_env({"COUNCIL_REDIS_URL": "redis://:p%40ss@h:6380/2"})
    assert pool_kwargs(in_url)["password"] == "p@ss"
    apart = QueueSettings.from_env({"REDIS_URL": "redis://h:6380/2", "COUNCIL_REDIS_PASSWORD": "hunter2"})
    kwargs = pool_kwargs(apart)
    assert (kwargs["password"], kwargs["host"], kwargs["port"], kwargs["db"]) == ("hunter2", "h", 6380, 2)
    assert QueueSettings.from_env({"COUNCIL_REDIS_PASSWORD": ""}).redis_password is None


def test_tls_files_from_the_environment_or_the_url_reach_an_ssl_connection(ca):
    env = QueueSettings.from_env(
        {"COUNCIL_REDIS_URL": "rediss://h:6379/0", "COUNCIL_REDIS_SSL_CA_CERTS": ca, "COUNCIL_REDIS_SSL_CERTFILE": ca}
    )
    kwargs = pool_kwargs(env)
    assert kwargs["class"] is redis.SSLConnection
    assert (kwargs["ssl_ca_certs"], kwargs["ssl_certfile"]) == (ca, ca)
    url = QueueSettings.from_env({"COUNCIL_REDIS_URL": f"rediss://h/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"})
    kwargs = pool_kwargs(url)
    assert kwargs["class"] is redis.SSLConnection
    assert (kwargs["ssl_ca_certs"], kwargs["ssl_cert_reqs"]) == (ca, "required")
    async_client = url.connect_async()
    assert async_client.connection_pool.connection_kwargs["ssl_ca_certs"] == ca


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"COUNCIL_REDIS_URL": "http://h"}, "must start with redis://"),
        ({"COUNCIL_REDIS_URL": "redis://h/0?db=zero"}, "is malformed"),
        ({"COUNCIL_REDIS_URL": "redis://h/0?socket_timeout=soon"}, "is malformed"),
        ({"COUNCIL_REDIS_URL": "rediss://h/0?ssl_cert_reqs=maybe"}, "ssl_cert_reqs"),
        ({"COUNCIL_REDIS_URL": "redis://:a@h/0", "COUNCIL_REDIS_PASSWORD": "b"}, "not both"),
        ({"COUNCIL_REDIS_URL": "redis://h/0", "COUNCIL_REDIS_SSL_CA_CERTS": "CA"}, "not a TLS URL (rediss://)"),
        ({"COUNCIL_REDIS_URL": "rediss://h/0", "COUNCIL_REDIS_SSL_KEYFILE": "/nope/key.pem"}, "no such file"),
        ({"COUNCIL_REDIS_URL": "rediss://h/0?ssl_ca_certs=CA", "COUNCIL_REDIS_SSL_CA_CERTS": "CA"}, "not both"),
    ],
)
def test_settings_that_cannot_work_are_refused_saying_which(environ, says, ca):
    environ = {k: v.replace("CA", ca) for k, v in environ.items()}
    with pytest.raises(SettingsError, match="COUNCIL_REDIS_") as refused:
        QueueSettings.from_env(environ)
    assert says in str(refused.value)


def test_the_password_never_shows_in_messages_or_repr():
    settings = QueueSettings(redis_url="redis://me:s3cr3t@h:1/0", redis_password=None)
    assert settings.safe_url == "redis://me:***@h:1/0"
    assert "s3cr3t" not in repr(settings)
    assert "hunter2" not in repr(QueueSettings(redis_password="hunter2"))
    assert QueueSettings(redis_url="rediss://h:1/0").safe_url == "rediss://h:1/0"
    with pytest.raises(SettingsError) as refused:
        QueueSettings.from_env({"COUNCIL_REDIS_URL": "redis://:s3cr3t@h/0?db=x"})
    assert "s3cr3t" not in str(refused.value) and "***" in str(refused.value)


def test_a_redis_that_is_down_passes_the_credentials_check():
    """Waiting for a Redis that is away is the outage path's job, not a settings error."""
    QueueSettings(redis_url="redis://127.0.0.1:1/0").check_credentials()
