"""`python -m web.upload`: transcribe folders of audio files through the batch API.

python -m web.upload recordings/ --format srt
python -m web.upload a.mp3 b.webm --url https://council.example --token "$COUNCIL_API_TOKEN"

Folders are walked, sub-folders too, for audio files (wav, flac, ogg, mp3, webm); what else they
hold is skipped and named on stderr. A file named on the command line is sent whatever its
extension. Uploads in batches, shows progress on stderr while the server works, and writes each
transcript next to its file (`a.srt`). Exits 1 when any file failed, 2 when the server cannot be
used (one line saying so), 130 on Ctrl-C.
"""

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from queues import find_audio
from shared_schemas import AUDIO_FORMATS, MAX_AUDIO_BYTES

from .transcripts import FORMATS

BATCH_FILES = 20
BATCH_BYTES = 4 * MAX_AUDIO_BYTES
BAR_WIDTH = 30


@dataclass
class Item:
    path: Path
    job_id: str | None = None
    result_url: str | None = None
    state: str = "queued"
    progress: float = 0.0
    error: str | None = None


def batches(items: list[Item]) -> Iterator[list[Item]]:
    group: list[Item] = []
    size = 0
    for item in items:
        length = item.path.stat().st_size
        if group and (len(group) >= BATCH_FILES or size + length > BATCH_BYTES):
            yield group
            group, size = [], 0
        group.append(item)
        size += length
    if group:
        yield group


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def upload(client: httpx.Client, group: list[Item]) -> str | None:
    """Send one batch; sets each item's job, or its error. The batch's status URL."""
    with ExitStack() as stack:
        files = [("files", (i.path.name, stack.enter_context(i.path.open("rb")))) for i in group]
        response = client.post("/api/transcriptions", files=files)
    if response.status_code != 202:
        for item in group:
            item.state, item.error = "failed", f"upload refused: {_error_message(response)}"
        return None
    body = response.json()
    for item, job in zip(group, body["jobs"], strict=True):
        item.job_id, item.result_url, item.state = job["job_id"], job["result_url"], job["state"]
        item.error = job["error"]["message"] if job.get("error") else None
    return str(body["status_url"])


def poll(client: httpx.Client, status_url: str, items: list[Item]) -> bool:
    """Refresh the items of one batch; whether all are done."""
    response = client.get(status_url)
    if response.status_code != 200:
        for item in items:
            item.state, item.error = "failed", f"status unavailable: {_error_message(response)}"
        return True
    body = response.json()
    by_job = {item.job_id: item for item in items}
    for file in body["files"]:
        found = by_job.get(file["job_id"])
        if found is not None:
            found.state, found.progress = file["state"], file.get("progress") or 0.0
            found.error = file["error"]["message"] if file.get("error") else None
    return bool(body["done"])


def draw(items: list[Item], out: TextIO) -> None:
    done = sum(i.state in ("finished", "failed") for i in items)
    failed = sum(i.state == "failed" for i in items)
    fraction = sum(1.0 if i.state in ("finished", "failed") else i.progress for i in items) / max(1, len(items))
    bar = "#" * round(fraction * BAR_WIDTH)
    line = f"[{bar:<{BAR_WIDTH}}] {done}/{len(items)} done" + (f", {failed} failed" if failed else "")
    out.write(f"\r{line}" if out.isatty() else f"{line}\n")
    out.flush()


def destination(path: Path, fmt: str, taken: set[Path]) -> Path:
    """`memo.srt` beside `memo.wav`, or `memo.wav.srt` when another file already took that name."""
    target = path.with_suffix(f".{fmt}")
    if target in taken:
        target = path.with_name(f"{path.name}.{fmt}")
    taken.add(target)
    return target


def run(client: httpx.Client, paths: list[Path], fmt: str, interval: float, err: TextIO) -> int:
    items = [Item(p) for p in paths]
    for item in items:
        if item.path.stat().st_size > MAX_AUDIO_BYTES:
            item.state, item.error = "failed", f"over the {MAX_AUDIO_BYTES // 2**20} MiB limit per file"
    pending: dict[str, list[Item]] = {}
    for group in batches([i for i in items if i.state != "failed"]):
        status_url = upload(client, group)
        if status_url is not None:
            pending[status_url] = group
    last = ""
    while pending:
        for status_url in list(pending):
            if poll(client, status_url, pending[status_url]):
                del pending[status_url]
        line = repr([(i.state, round(i.progress, 2)) for i in items])
        if line != last:
            draw(items, err)
            last = line
        if pending:
            time.sleep(interval)
    if err.isatty():
        err.write("\n")
    taken: set[Path] = set()
    for item in items:
        if item.state == "finished" and item.result_url:
            response = client.get(item.result_url, params={"format": fmt})
            if response.status_code == 200:
                destination(item.path, fmt, taken).write_bytes(response.content)
            else:
                item.state, item.error = "failed", _error_message(response)
    failures = [item for item in items if item.state != "finished"]
    for item in failures:
        err.write(f"{item.path}: failed: {item.error or item.state}\n")
    err.write(f"{len(items) - len(failures)} transcribed, {len(failures)} failed\n")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m web.upload", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="FOLDER_OR_FILE")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the Council app (default: %(default)s)")
    parser.add_argument("--format", choices=FORMATS, default="srt", help="transcript format (default: %(default)s)")
    parser.add_argument("--token", default=os.environ.get("COUNCIL_API_TOKEN"), help="API token, if the app has one")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between status checks")
    args = parser.parse_args(argv)
    found = find_audio(args.paths)
    if found.missing:
        parser.error("no such file or folder: " + ", ".join(map(str, found.missing)))
    if found.summary():
        print(found.summary(), file=sys.stderr)
    paths = found.files
    if not paths:
        parser.error("no audio files found (" + ", ".join(AUDIO_FORMATS) + ")")
    headers: dict[str, Any] = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=httpx.Timeout(30.0, write=300.0)) as client:
            return run(client, paths, args.format, args.interval, sys.stderr)
    except httpx.ConnectError:
        print(
            f"python -m web.upload: nothing answers at {args.url}: start the app (make run) or pass --url",
            file=sys.stderr,
        )
        return 2
    except httpx.HTTPError as exc:
        print(f"python -m web.upload: cannot use {args.url}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # What was uploaded goes on at the server: /batch shows it, `python -m queues cancel ID` stops it.
        print(
            "\npython -m web.upload: interrupted; files already sent are still being transcribed on the server "
            "(see /batch; python -m queues cancel BATCH_ID stops a batch)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
