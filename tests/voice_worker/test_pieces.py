"""A long file is worked in pieces: paused between two it goes on where it stopped, on the same RQ
job, without running the VAD again; cancelled, it stops and says so; past its time limit it is
not tried again. Real Whisper and silero on a 72 s flite reading (three pieces), a real Redis,
the worker in this process (burst mode) on queues of each test's own.
"""

import re
import subprocess
import uuid

import pytest
from rq.job import Job
from rq.registry import CanceledJobRegistry
from rq.serializers import JSONSerializer

from billing import Ledger
from queues import BlobStore, EventPublisher, JobClient, JobEvents, QueueSettings, replay
from shared_schemas import ErrorCode, EventType, TranscriptionJob
from voice_worker import context, transcription
from voice_worker.engines import Engines
from voice_worker.settings import WorkerSettings
from voice_worker.transcription import Paused, PieceLog
from voice_worker.worker import VoiceWorker

pytestmark = pytest.mark.timeout(120)

MEETING = (
    "The council met early on a cold morning in the old hall by the river. Ada opened the meeting with a "
    "short report on the harvest, which had been better than anyone expected. Iris asked whether the new "
    "bridge could be finished before the spring floods arrived. Angus doubted it, pointing to the cost of "
    "timber and the shortage of skilled carpenters in the valley. Max listened to each of them and then "
    "asked for numbers: how many workers, how many weeks, and how much money remained in the treasury "
    "after the winter. Ada said that forty workers could finish the frame in six weeks if the weather held. "
    "Iris suggested borrowing carpenters from the northern villages in exchange for grain. Angus warned "
    "that the northern villages had broken their promises twice before, and that a bridge half built was "
    "worse than no bridge at all. The chair proposed a vote. Three members agreed to start the work at "
    "once, and one asked that his doubts be written down in the record. After the vote the council turned "
    "to the school, whose roof leaked in every storm, and to the mill, whose wheel had cracked in the frost."
)


@pytest.fixture(scope="module")
def meeting(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("pieces") / "meeting.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", MEETING, "-o", str(path)], check=True)
    return path.read_bytes()


@pytest.fixture
def engines(whisper, silero, espeak) -> Engines:
    return Engines(stt=whisper, tts=[espeak], vad=silero)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).split()


def enqueue(settings: QueueSettings, connection, audio: bytes, user: str = "alice") -> TranscriptionJob:
    session = f"batch-{uuid.uuid4().hex[:8]}"
    key = BlobStore(settings, connection).put(session, audio)
    job = TranscriptionJob(session_id=session, job_id=f"{session}-000", audio_key=key, user=user)
    JobClient(settings, connection).enqueue(job, queue=settings.batch_queue)
    return job


def run_burst(settings: WorkerSettings, engines: Engines, connection) -> VoiceWorker:
    worker = VoiceWorker(settings, engines, connection=connection)
    try:
        worker.work(burst=True)
    finally:
        context.install(None)  # type: ignore[arg-type]
    return worker


def test_a_file_paused_between_pieces_goes_on_where_it_stopped(own, connection, meeting, engines, whisper):
    blobs, publisher = BlobStore(own, connection), EventPublisher(own, connection)
    session = f"pieces-{uuid.uuid4().hex[:8]}"
    job = TranscriptionJob(session_id=session, job_id=f"{session}-1", audio_key=blobs.put(session, meeting))
    whole = transcription.transcribe(job, engines, blobs, JobEvents(publisher, f"{session}-ref", job.job_id))

    log = PieceLog(connection, f"{own.key_prefix}:pieces:{job.job_id}", 600)

    def pause() -> None:
        raise Paused("speech waits")

    with pytest.raises(Paused):
        transcription.transcribe(job, engines, blobs, JobEvents(publisher, session, job.job_id), log=log, between=pause)
    spans, done = log.load()
    assert spans is not None and len(spans) == 3 and list(done) == [0]  # one piece, then it paused

    # The next run (here, or on a worker with no VAD at all): the spans come from the log.
    no_vad = Engines(stt=whisper, tts=[], vad=None)
    again = transcription.transcribe(
        job, no_vad, blobs, JobEvents(publisher, session, job.job_id), log=log, between=lambda: None
    )
    assert again == whole and len(again.segments) > 3
    assert not connection.exists(log.key)
    progress = [e for e in replay(connection, own, session) if e.type is EventType.PROGRESS]
    # Each event once, in order, over both runs: a segment's as it was decoded, then its piece's.
    assert [e.seq for e in progress] == list(range(len(progress)))
    pieces = [e for e in progress if not e.payload.segments]
    assert [round(e.payload.done, 1) for e in pieces] == [round(end, 1) for _, end in spans]
    streamed = [segment.text for e in progress for segment in e.payload.segments]
    assert streamed == [segment.text for segment in whole.segments]


def test_a_worker_runs_a_long_file_in_several_runs_of_the_same_job(own, connection, meeting, engines):
    job = enqueue(own, connection, meeting)
    run_burst(WorkerSettings(queues=own, slice_s=0.001), engines, connection)  # a pause after every piece

    rq_job = Job.fetch(job.job_id, connection=connection, serializer=JSONSerializer)
    assert rq_job.get_status() == "finished" and rq_job.meta["progress"] == 1.0
    text = rq_job.return_value()["text"]
    assert words(text)[:6] == words(MEETING)[:6] and "frost" in words(text)
    events = replay(connection, own, job.session_id)
    types = [e.type for e in events]
    assert types[-1] is EventType.TRANSCRIPT and set(types[:-1]) == {EventType.PROGRESS}
    assert [e.seq for e in events] == list(range(len(events)))  # each once over the runs
    assert len([e for e in events[:-1] if not e.payload.segments]) == 3  # a piece's progress each
    streamed = [segment.text for e in events[:-1] for segment in e.payload.segments]
    assert " ".join(streamed) == text  # every segment went out as it was decoded, once
    # Each run is metered, the file's audio once; the pauses are noted.
    runs = Ledger(connection, own.key_prefix).entries(user="alice")
    assert len(runs) == 3, runs
    assert sum(int(r["audio_ms"]) for r in runs) == round(rq_job.return_value()["duration_s"] * 1000)
    assert sum("paused" in (r.get("note") or "") for r in runs) == 2
    # Nothing is left behind: not in flight, not in a lane, no saved pieces.
    assert not [k for k in connection.scan_iter(f"{own.key_prefix}:inflight:*") if connection.llen(k)]
    assert not list(connection.scan_iter(f"{own.key_prefix}:fair:*:lane:*"))
    assert not list(connection.scan_iter(f"{own.key_prefix}:pieces:*"))
    assert connection.llen(f"rq:queue:{own.batch_queue}") == 0


def test_a_cancelled_file_stops_and_says_so(own, connection, meeting, engines):
    job = enqueue(own, connection, meeting)
    connection.set(own.cancel_key(job.job_id), 1)  # what JobClient.stop sets for a running job
    run_burst(WorkerSettings(queues=own), engines, connection)

    rq_job = Job.fetch(job.job_id, connection=connection, serializer=JSONSerializer)
    assert rq_job.get_status() == "canceled"
    assert job.job_id in CanceledJobRegistry(own.batch_queue, connection=connection)
    (ending,) = replay(connection, own, job.session_id)
    assert ending.type is EventType.FAILED and ending.payload.code == "canceled"
    assert not connection.exists(own.cancel_key(job.job_id))
    assert not list(connection.scan_iter(f"{own.key_prefix}:pieces:*"))


def test_a_file_past_its_time_limit_is_not_tried_again(own, connection, meeting, engines):
    limited = own.model_copy(update={"transcribe_timeout_s": 1, "retries": 2})
    job = enqueue(limited, connection, meeting)
    run_burst(WorkerSettings(queues=limited), engines, connection)

    rq_job = Job.fetch(job.job_id, connection=connection, serializer=JSONSerializer)
    assert rq_job.get_status() == "failed"
    error = rq_job.meta["error"]
    assert error["code"] == ErrorCode.TIMEOUT and not error["retryable"], error
    assert "1 s" in error["message"]
    # The segments decoded before the limit went out as progress (#24); the job's one ending is the failure.
    (ending,) = [e for e in replay(connection, own, job.session_id) if e.type is not EventType.PROGRESS]
    assert ending.type is EventType.FAILED and ending.payload.model_dump(mode="json") == error
    assert len(Ledger(connection, own.key_prefix).entries(user="alice")) == 1  # one run, no retry
