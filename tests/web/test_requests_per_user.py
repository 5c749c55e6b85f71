"""The HTTP requests one user has under way are capped (#22, break 6: 400 concurrent chat
completions of one user slowed everyone): past COUNCIL_MAX_REQUESTS_PER_USER, 429 `rate_limited`
at once; another user is served. A real server; no worker serves these queues, so a transcription
request stays under way until its client gives up."""

import threading
import time
import uuid

import httpx
import pytest

from web.app import create_app
from web.settings import AppSettings

pytestmark = pytest.mark.timeout(60)


def test_one_users_requests_under_way_are_capped_and_another_user_is_served(own, serve, flite, assert_error):
    tokens = {f"{name}{uuid.uuid4().hex[:6]}": uuid.uuid4().hex for name in ("mallory", "victim")}
    mallory, victim = tokens
    app = create_app(AppSettings(queues=own, responder="echo", api_users=tokens, max_requests_per_user=2))
    audio = flite("hold the line")
    with serve(app) as url:

        def hold() -> None:
            headers = {"Authorization": f"Bearer {tokens[mallory]}"}
            files = {"file": ("memo.wav", audio)}
            try:
                httpx.post(
                    f"{url}/v1/audio/transcriptions",
                    headers=headers,
                    data={"model": "whisper-1"},
                    files=files,
                    timeout=4,
                )
            except httpx.ReadTimeout:
                pass

        holders = [threading.Thread(target=hold, daemon=True) for _ in range(2)]
        for holder in holders:
            holder.start()
        time.sleep(1.0)  # both under way, waiting for a worker
        mine = httpx.get(f"{url}/api/usage", headers={"Authorization": f"Bearer {tokens[mallory]}"})
        error = assert_error(mine, 429, "rate_limited")
        assert "COUNCIL_MAX_REQUESTS_PER_USER" in error["message"] and mine.headers["retry-after"]
        theirs = httpx.get(f"{url}/api/usage", headers={"Authorization": f"Bearer {tokens[victim]}"})
        assert theirs.status_code == 200
        for holder in holders:
            holder.join(10)
        # Her requests ended: she is served again.
        assert httpx.get(f"{url}/api/usage", headers={"Authorization": f"Bearer {tokens[mallory]}"}).status_code == 200
