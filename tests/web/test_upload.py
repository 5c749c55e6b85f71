"""`python -m web.upload` against a real uvicorn server, a real Redis and a real worker."""

import re
import socket
from pathlib import Path

import pytest

from queues import find_audio
from web import upload
from web.app import create_app
from web.settings import AppSettings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(settings, serve):
    with serve(create_app(AppSettings(queues=settings, api_token="secret"))) as url:
        yield url


@pytest.mark.usefixtures("worker")
def test_a_folder_is_transcribed_next_to_its_files(server, flite, tmp_path, capsys):
    folder = tmp_path / "memos"
    (folder / "2026").mkdir(parents=True)
    (folder / "noon.wav").write_bytes(flite("the meeting starts at noon"))
    (folder / "2026" / "report.wav").write_bytes(flite("bring the quarterly report"))
    (folder / "broken.mp3").write_bytes(b"not an mp3 at all" * 50)
    (folder / "notes.txt").write_text("not audio, not uploaded")

    code = upload.main([str(folder), "--url", server, "--format", "srt", "--token", "secret", "--interval", "0.1"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "report" in (folder / "2026" / "report.srt").read_text()  # sub-folders too, each beside its file
    assert re.match(r"1\n\d\d:\d\d:\d\d,\d{3} --> ", (folder / "noon.srt").read_text())
    assert not (folder / "broken.srt").exists() and not (folder / "notes.srt").exists()
    assert f"skipped 1 file that is not wav/flac/ogg/mp3/webm ({folder / 'notes.txt'})" in err
    assert re.search(r"broken\.mp3: failed: .+", err), err
    assert "[" + "#" * upload.BAR_WIDTH + "] 3/3 done, 1 failed" in err
    assert err.rstrip().endswith("2 transcribed, 1 failed")


def test_a_wrong_token_fails_every_file(server, tmp_path, capsys):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    assert upload.main([str(tmp_path / "a.wav"), "--url", server, "--token", "wrong"]) == 1
    assert "upload refused: A valid API token is required" in capsys.readouterr().err


def test_no_server_exits_2(tmp_path, capsys):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert upload.main([str(tmp_path), "--url", f"http://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"python -m web.upload: nothing answers at http://127.0.0.1:{port}: start the app (make run) or pass --url\n"
    )


def test_batches_and_names(tmp_path, monkeypatch, capsys):
    for name in ("a.wav", "a.mp3", "b.flac", "c.txt", "sub/d.ogg", "sub/e.doc", ".git/f.wav", ".DS_Store"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * 10)
    found = find_audio([tmp_path, tmp_path / "c.txt"])
    # Named files whatever their extension; folders walked (hidden entries not), each file once.
    names = [p.relative_to(tmp_path).as_posix() for p in found.files]
    assert names == ["a.mp3", "a.wav", "b.flac", "sub/d.ogg", "c.txt"]
    assert [p.name for p in found.skipped] == ["c.txt", "e.doc"]
    assert sorted(p.name for p in found.hidden) == [".DS_Store", ".git"]
    assert found.summary() == (
        f"skipped 2 files that are not wav/flac/ogg/mp3/webm ({tmp_path / 'c.txt'}, {tmp_path / 'sub/e.doc'}), "
        "2 hidden (named .*); name a file to send it anyway"
    )
    found = found.files
    monkeypatch.setattr(upload, "BATCH_FILES", 2)
    assert [len(g) for g in upload.batches([upload.Item(p) for p in found])] == [2, 2, 1]
    taken: set[Path] = set()
    assert upload.destination(tmp_path / "a.mp3", "srt", taken).name == "a.srt"
    assert upload.destination(tmp_path / "a.wav", "srt", taken).name == "a.wav.srt"
    with pytest.raises(SystemExit):
        upload.main([str(tmp_path / "missing")])
    assert "no such file or folder: " + str(tmp_path / "missing") in capsys.readouterr().err
