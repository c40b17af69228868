"""How filtered batches become record payloads: Send as Batch and Wait for Complete Batch.

Pure: the caller passes the time in. Three modes, decided by the settings:

* **Send as Batch** (default): one record per batch.
* **Send as Batch off**: one record per event; each keeps the whole batch envelope
  (metadata, user attributes and identities, ``mpid``, ``message_id``…) with
  ``events: [that_event]``. A batch with no events stays one record. ``message_id`` is kept as
  is, so a consumer can regroup the events of one upload.
* **Wait for Complete Batch** (overrides Send as Batch): :class:`SessionBuffer` holds each
  session's events — keyed by user (``mpid`` + ``mp_deviceid``) and session (``session_uuid``,
  else ``session_id``) — until a ``session_end`` of that session arrives, then emits one
  merged batch: the envelope of the latest batch with all the session's events in arrival
  order. Events without a session, and batches without events, are emitted at once. Memory is
  bounded: past ``max_sessions`` the oldest session is emitted early, a session older than
  ``max_age`` seconds is emitted by :meth:`SessionBuffer.expire`, and :meth:`SessionBuffer.flush`
  emits everything. Nothing is ever dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["SessionBuffer", "record_payloads", "session_key"]


def record_payloads(batch: dict[str, Any], *, send_as_batch: bool) -> list[dict[str, Any]]:
    """Split a filtered batch into record payloads (Send as Batch on: itself; off: per event)."""
    events = batch.get("events")
    if send_as_batch or not isinstance(events, list) or not events:
        return [batch]
    out = []
    for event in events:
        single = dict(batch)
        single["events"] = [event]
        out.append(single)
    return out


def session_key(event: Mapping[str, Any]) -> str | None:
    """The session an event belongs to (``data.session_uuid``, else ``data.session_id``)."""
    data = event.get("data")
    if isinstance(data, dict):
        for name in ("session_uuid", "session_id"):
            value = data.get(name)
            if value is not None and value != "":
                return _identity(value)
    return None


def _identity(value: object) -> str:
    """An id as text, whatever the batch holds: never raises (a 5,000-digit int, a dict…).

    ``str()`` of an integer past Python's 4,300 digits raises, and so may ``repr()`` of a
    nested value; a malformed id must not make the batch it is in fail after its events
    were counted. Strings and small numbers keep their text; ids that are not scalars share
    one key per type (they are malformed: grouping them is all that is asked).
    """
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() < 10_000 else f"int:{value:x}"  # noqa: PLR2004
    return f"<{type(value).__name__}>"


def _user_key(batch: Mapping[str, Any]) -> tuple[str, str]:
    return (_identity(batch.get("mpid")), _identity(batch.get("mp_deviceid")))


@attrs.define
class _Pending:
    latest: dict[str, Any]
    events: list[Any]
    started: float


class SessionBuffer:
    """Wait for Complete Batch: buffer events per user and session until ``session_end``."""

    def __init__(self, *, max_sessions: int = 10_000, max_age: float = 3600.0) -> None:
        """Create an empty buffer.

        Args:
            max_sessions: Sessions held at most; past it the oldest is emitted early.
            max_age: Seconds after its first event at which a session is emitted anyway.
        """
        if max_sessions < 1 or max_age <= 0:
            raise ValueError("max_sessions must be >= 1 and max_age > 0")
        self.max_sessions = max_sessions
        self.max_age = max_age
        self._pending: dict[tuple[str, str, str], _Pending] = {}

    def __len__(self) -> int:
        """The number of sessions held."""
        return len(self._pending)

    def add(
        self, original: Mapping[str, Any], filtered: dict[str, Any], now: float
    ) -> list[dict[str, Any]]:
        """Take one batch; return the batches ready to send.

        Args:
            original: The batch as received, read for user identity and ``session_end``
                events (which a setting may have filtered out of ``filtered``).
            filtered: The same batch after :func:`streambridge.forwarder.filtering.filter_batch`.
            now: The current time in seconds (any monotonic clock).
        """
        ready: list[dict[str, Any]] = []
        raw_events = original.get("events")
        events = filtered.get("events")
        if not isinstance(raw_events, list) or not raw_events:
            return [filtered]  # an eventless batch has no session to wait for
        user = _user_key(original)
        loose: list[Any] = []
        listed = events if isinstance(events, list) else []
        keyed = [(event, session_key(event)) for event in listed]  # may it fail: nothing held
        for event, key in keyed:
            if key is None:
                loose.append(event)
                continue
            slot = (user[0], user[1], key)
            pending = self._pending.get(slot)
            if pending is None:
                pending = self._pending[slot] = _Pending(filtered, [], now)
            pending.latest = filtered
            pending.events.append(event)
        if loose:
            ready.append(_with_events(filtered, loose))
        for event in raw_events:
            if isinstance(event, dict) and _is_session_end(event):
                key = session_key(event)
                done = self._pending.pop((user[0], user[1], key), None) if key is not None else None
                if done is not None:
                    ready.append(_with_events(done.latest, done.events))
        while len(self._pending) > self.max_sessions:
            ready.append(self._pop_oldest())
        return ready

    def expire(self, now: float) -> list[dict[str, Any]]:
        """Emit the sessions whose first event is at least ``max_age`` seconds old."""
        ready = []
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if now - oldest.started < self.max_age:
                break
            ready.append(self._pop_oldest())
        return ready

    def flush(self) -> list[dict[str, Any]]:
        """Emit every session held, oldest first, and empty the buffer."""
        ready = [_with_events(p.latest, p.events) for p in self._pending.values()]
        self._pending.clear()
        return ready

    def _pop_oldest(self) -> dict[str, Any]:
        key = next(iter(self._pending))
        pending = self._pending.pop(key)
        return _with_events(pending.latest, pending.events)


def _is_session_end(event: Mapping[str, Any]) -> bool:
    event_type = event.get("event_type")
    return isinstance(event_type, str) and event_type.lower() == "session_end"


def _with_events(batch: dict[str, Any], events: list[Any]) -> dict[str, Any]:
    out = dict(batch)
    out["events"] = events
    return out
