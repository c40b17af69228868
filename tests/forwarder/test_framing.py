"""Unit tests of streambridge.forwarder.framing: Send as Batch and Wait for Complete Batch."""

from __future__ import annotations

from typing import Any

import pytest

from streambridge import ForwarderSettings
from streambridge.forwarder.filtering import filter_batch
from streambridge.forwarder.framing import SessionBuffer, record_payloads, session_key

DEFAULT = ForwarderSettings(delivery_stream_name="s")


def test_send_as_batch_on_is_one_record(ios: dict[str, Any]) -> None:
    """Send as Batch: the filtered batch is the one payload."""
    batch = filter_batch(ios, DEFAULT)
    assert batch is not None
    assert [batch] == record_payloads(batch, send_as_batch=True)


def test_send_as_batch_off_is_one_record_per_event(ios: dict[str, Any]) -> None:
    """Send as Batch off: 13 payloads, each the full envelope with one event, in order."""
    batch = filter_batch(ios, DEFAULT)
    assert batch is not None
    payloads = record_payloads(batch, send_as_batch=False)
    assert 13 == len(payloads)
    assert batch["events"] == [p["events"][0] for p in payloads]
    envelope = {k: v for k, v in batch.items() if k != "events"}
    for payload in payloads:
        assert 1 == len(payload["events"])
        assert envelope == {k: v for k, v in payload.items() if k != "events"}
        assert ios["message_id"] == payload["message_id"]


def test_send_as_batch_off_eventless_stays_one(s2s: dict[str, Any]) -> None:
    """An eventless batch is one payload either way."""
    assert [s2s] == record_payloads(s2s, send_as_batch=False)


def test_session_key() -> None:
    """session_uuid wins, then session_id; none gives None."""
    assert "U" == session_key({"data": {"session_uuid": "U", "session_id": 5}})
    assert "5" == session_key({"data": {"session_id": 5}})
    assert session_key({"data": {"session_uuid": ""}}) is None
    assert session_key({"data": None}) is None


def _split_session(ios: dict[str, Any], parts: int) -> list[dict[str, Any]]:
    events = ios["events"]
    size = -(-len(events) // parts)
    return [dict(ios, events=events[i : i + size]) for i in range(0, len(events), size)]


def test_wait_for_complete_batch_merges_a_session(ios: dict[str, Any]) -> None:
    """A session split over three uploads comes out as one batch at its session_end."""
    buffer = SessionBuffer()
    uploads = _split_session(ios, 3)
    ready: list[dict[str, Any]] = []
    for n, upload in enumerate(uploads):
        out = buffer.add(upload, upload, now=float(n))
        assert (n == len(uploads) - 1) == bool(out)
        ready += out
    assert 1 == len(ready)
    assert ios["events"] == ready[0]["events"]
    assert 0 == len(buffer)


def test_wait_uses_original_session_end_even_if_filtered(ios: dict[str, Any]) -> None:
    """With lifecycle events off, session_end still closes the session."""
    settings = ForwarderSettings(delivery_stream_name="s", send_lifecycle_events=False)
    buffer = SessionBuffer()
    ready = []
    for upload in _split_session(ios, 2):
        filtered = filter_batch(upload, settings)
        assert filtered is not None
        ready += buffer.add(upload, filtered, now=0.0)
    assert 1 == len(ready)
    assert 9 == len(ready[0]["events"])


def test_wait_emits_sessionless_events_and_eventless_batches_at_once(s2s: dict[str, Any]) -> None:
    """S2S batches without sessions are not held."""
    buffer = SessionBuffer()
    assert [s2s] == buffer.add(s2s, s2s, now=0.0)
    loose = dict(s2s, events=[{"event_type": "custom_event", "data": {"event_name": "x"}}])
    assert [loose] == buffer.add(loose, loose, now=0.0)
    assert 0 == len(buffer)


def test_wait_keeps_users_and_sessions_apart(ios: dict[str, Any]) -> None:
    """The same session id for two users is two sessions."""
    buffer = SessionBuffer()
    first, second = _split_session(ios, 2)
    other_user = dict(first, mpid=42)
    buffer.add(first, first, 0.0)
    buffer.add(other_user, other_user, 0.0)
    assert 2 == len(buffer)
    ready = buffer.add(second, second, 0.0)
    assert 1 == len(ready)
    assert ios["events"] == ready[0]["events"]
    assert [other_user["events"]] == [b["events"] for b in buffer.flush()]


def test_wait_is_bounded_by_count_and_age(ios: dict[str, Any]) -> None:
    """Past max_sessions the oldest goes early; past max_age expire() emits it."""
    buffer = SessionBuffer(max_sessions=2, max_age=10.0)
    first = _split_session(ios, 2)[0]
    users = [dict(first, mpid=n) for n in range(3)]
    assert [] == buffer.add(users[0], users[0], 0.0)
    assert [] == buffer.add(users[1], users[1], 5.0)
    early = buffer.add(users[2], users[2], 6.0)
    assert [0] == [b["mpid"] for b in early]
    assert [] == buffer.expire(14.9)
    assert [1] == [b["mpid"] for b in buffer.expire(15.0)]
    assert [2] == [b["mpid"] for b in buffer.flush()]
    assert [] == buffer.flush()


def test_session_buffer_rejects_nonsense_bounds() -> None:
    """Zero sessions or a non-positive age is a programming error."""
    with pytest.raises(ValueError):
        SessionBuffer(max_sessions=0)
