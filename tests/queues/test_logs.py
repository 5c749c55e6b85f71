import io
import json
import logging

from queues import log_context
from queues._logs import JsonFormatter


def test_json_lines_carry_session_and_job_ids():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("test.logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with log_context(session_id="s1"):
            log.info("connected %s", "ok")
            with log_context(job_id="j1"):
                log.warning("job")
        log.info("outside")
    finally:
        log.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["message"], x.get("session_id"), x.get("job_id")) for x in lines] == [
        ("connected ok", "s1", None),
        ("job", "s1", "j1"),
        ("outside", None, None),
    ]
    assert lines[1]["level"] == "warning" and lines[0]["logger"] == "test.logs"
