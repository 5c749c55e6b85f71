import asyncio
import json

import pytest

from queues import EventHub, EventPublisher, JobEvents, QueueSettings, replay
from queues._events import channel_key, parse_message, stream_key
from shared_schemas import EventType, payloads

DONE = payloads.Transcript(text="done", language="en", duration_s=1.0, engine="e")


def emit(settings, connection, session_id, count, job_id="job"):
    events = JobEvents(EventPublisher(settings, connection), session_id, job_id)
    return [events.emit(payloads.Progress(done=i, total=count)) for i in range(count)]


def test_publish_stores_in_the_stream_and_publishes_with_the_id(settings, connection, session_id):
    pubsub = connection.pubsub()
    pubsub.subscribe(channel_key(settings, session_id))
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    sent = emit(settings, connection, session_id, 3)
    live = [parse_message(pubsub.get_message(timeout=1)["data"]) for _ in sent]
    assert [e.id for e in live] == [e.id for e in sent]
    assert [e.seq for e in live] == [0, 1, 2]
    assert replay(connection, settings, session_id) == sent
    assert replay(connection, settings, session_id, after=sent[0].id) == sent[1:]
    assert 0 < connection.ttl(stream_key(settings, session_id)) <= settings.stream_ttl_s
    pubsub.close()


def test_stream_is_capped(redis_url, connection, session_id):
    settings = QueueSettings(redis_url=redis_url, stream_maxlen=10)
    emit(settings, connection, session_id, 500)
    assert connection.xlen(stream_key(settings, session_id)) < 200


def test_hub_replays_what_a_disconnected_subscriber_missed_in_order(settings, connection, session_id):
    async def scenario():
        aconn = settings.connect_async()
        hub = EventHub(settings, aconn)
        await hub.start()
        async with hub.subscribe(session_id, after="0") as sub:
            first = emit(settings, connection, session_id, 2, "a")
            got = [await sub.get(timeout=2) for _ in first]
        assert got == first
        last_seen = got[-1].id
        # Disconnected: these finish while nobody listens.
        missed = emit(settings, connection, session_id, 5, "b")
        async with hub.subscribe(session_id, after=last_seen) as sub:
            later = emit(settings, connection, session_id, 2, "c")
            received = [await sub.get(timeout=2) for _ in range(7)]
            with pytest.raises(TimeoutError):
                await sub.get(timeout=0.2)
        assert received == missed + later
        await hub.close()
        await aconn.aclose()

    asyncio.run(scenario())


def test_hub_never_duplicates_events_racing_the_replay(settings, connection, session_id):
    """Events published while the replay runs arrive both ways; each is delivered once."""

    async def scenario():
        aconn = settings.connect_async()
        hub = EventHub(settings, aconn)
        await hub.start()
        before = emit(settings, connection, session_id, 50, "early")
        producer = asyncio.create_task(asyncio.to_thread(emit, settings, connection, session_id, 200, "late"))
        async with hub.subscribe(session_id, after="0") as sub:
            late = await producer
            received = [await sub.get(timeout=2) for _ in range(250)]
            with pytest.raises(TimeoutError):
                await sub.get(timeout=0.2)
        assert received == before + late
        await hub.close()
        await aconn.aclose()

    asyncio.run(scenario())


def test_hub_multiplexes_sessions_on_one_connection(settings, connection):
    async def scenario():
        aconn = settings.connect_async()
        hub = EventHub(settings, aconn)
        await hub.start()
        async with hub.subscribe("s-one") as one, hub.subscribe("s-two") as two:
            assert hub.sessions == 2
            emit(settings, connection, "s-one", 1, "x")
            emit(settings, connection, "s-two", 1, "y")
            assert (await one.get(timeout=2)).session_id == "s-one"
            assert (await two.get(timeout=2)).session_id == "s-two"
        assert hub.sessions == 0
        await hub.close()
        await aconn.aclose()

    asyncio.run(scenario())


def test_hub_recovers_what_it_missed_while_redis_dropped_its_connection(settings, connection, session_id, caplog):
    async def scenario():
        aconn = settings.connect_async()
        hub = EventHub(settings, aconn)
        await hub.start()
        async with hub.subscribe(session_id, after="0") as sub:
            first = emit(settings, connection, session_id, 1, "a")
            assert [await sub.get(timeout=2)] == first
            connection.client_kill_filter(_type="pubsub")
            missed = emit(settings, connection, session_id, 3, "b")  # published while it reconnects
            got = [await sub.get(timeout=10) for _ in missed]
            later = emit(settings, connection, session_id, 2, "c")
            got += [await sub.get(timeout=5) for _ in later]
            with pytest.raises(TimeoutError):
                await sub.get(timeout=0.3)
        await hub.close()
        await aconn.aclose()
        return got, missed + later

    got, expected = asyncio.run(scenario())
    assert got == expected
    assert "event hub lost Redis" in caplog.text


def test_a_held_ending_goes_out_only_with_the_transaction_that_records_the_end(settings, connection, session_id):
    events = JobEvents(EventPublisher(settings, connection), session_id, "job", hold_ending=True)
    events.emit(payloads.Progress(done=0, total=1))
    events.emit(DONE)
    assert [e.type for e in replay(connection, settings, session_id)] == [EventType.PROGRESS]
    with connection.pipeline() as pipe:
        pipe.set(f"{settings.key_prefix}:test:ended", "1")
        events.publish_ending(pipe)
        pipe.execute()
    sent = replay(connection, settings, session_id)
    assert [(e.type, e.seq) for e in sent] == [(EventType.PROGRESS, 0), (EventType.TRANSCRIPT, 1)]
    assert events.ending is None
    # A job that runs again publishes its ending once: the first one's stays the only one.
    again = JobEvents(EventPublisher(settings, connection), session_id, "job", hold_ending=True)
    again.emit(payloads.Progress(done=0, total=1))
    again.emit(DONE)
    with connection.pipeline() as pipe:
        again.publish_ending(pipe)
        pipe.execute()
    assert replay(connection, settings, session_id) == sent


def test_an_ending_in_a_transaction_survives_a_redis_without_the_script(settings, connection, session_id):
    connection.script_flush()
    events = JobEvents(EventPublisher(settings, connection), session_id, "job", hold_ending=True)
    events.emit(payloads.Pong())
    with connection.pipeline() as pipe:
        events.publish_ending(pipe)
        pipe.execute()
    assert [e.type for e in replay(connection, settings, session_id)] == [EventType.PONG]


def test_events_stored_before_payloads_were_typed_still_replay(settings, connection, session_id):
    """What the old envelope wrote (payloads as plain dicts) reads back typed, and the same."""
    old = [
        ("turn-1", "turn_started", {"input": "text", "text": "Hello council."}),
        ("turn-1", "token", {"member": "Echo", "text": "Hello council."}),
        (
            "turn-1-say-0",
            "audio",
            {
                "kind": "speech_clip",
                "audio_key": f"council:blob:{session_id}:a",
                "format": "wav",
                "sample_rate": 22050,
                "duration_s": 1.2,
                "voice": "max",
                "member": "Echo",
                "turn_id": "turn-1",
                "index": 0,
                "text": "Hello.",
                "engine": "espeak",
            },
        ),
        (
            "turn-1",
            "turn_done",
            {
                "status": "failed",
                "error": {"code": "budget_exceeded", "message": "m", "retryable": False, "budget": "daily"},
            },
        ),
    ]
    bodies = []
    for seq, (job_id, type_, payload) in enumerate(old):
        body = {
            "schema_version": 1,
            "type": type_,
            "session_id": session_id,
            "job_id": job_id,
            "seq": seq,
            "time": "2026-12-01T10:00:00.123456Z",
            "payload": payload,
        }
        bodies.append(body)
        connection.xadd(stream_key(settings, session_id), {"e": json.dumps(body)})
    events = replay(connection, settings, session_id)
    assert [type(e.payload) for e in events] == [
        payloads.TurnStarted,
        payloads.Token,
        payloads.Audio,
        payloads.TurnDone,
    ]
    assert events[2].payload.index == 0 and events[2].terminal
    assert events[3].payload.error.code == "budget_exceeded"
    # Read back the same; a clip stored before clips had chunks (this one) is written whole, with
    # the values PROTOCOL.md says a clip without them means.
    bodies[2]["payload"].update(chunk=0, sentence_done=True, last=True)
    assert [json.loads(e.model_dump_json(exclude={"id"})) for e in events] == bodies


def test_a_stored_event_of_a_type_this_side_does_not_know_is_skipped_not_fatal(
    settings, connection, session_id, caplog
):
    """A newer worker may add an event type: an app that cannot read it replays the rest."""
    stream = stream_key(settings, session_id)
    base = {"schema_version": 1, "session_id": session_id, "job_id": "j", "time": "2026-12-01T10:00:00Z"}
    connection.xadd(stream, {"e": json.dumps({**base, "type": "pong", "seq": 0, "payload": {}})})
    connection.xadd(stream, {"e": json.dumps({**base, "type": "from_the_future", "seq": 1, "payload": {}})})
    connection.xadd(stream, {"e": json.dumps({**base, "type": "pong", "seq": 2, "payload": {}})})
    assert [e.seq for e in replay(connection, settings, session_id)] == [0, 2]
    assert "cannot read" in caplog.text
