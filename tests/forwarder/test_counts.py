"""Issue 18, part 4: with Wait for Complete Batch too, the event counts add up exactly.

Every event of a dict batch with a list of events is found in a record sent or failed, or is
counted dropped (malformed) or filtered — once. Fuzzed with hypothesis: malformed events,
session ids and user ids of any shape (5,000-digit integers, dicts, surrogates).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streambridge import FirehoseForwarder, ForwarderSettings
from streambridge.testing import AcceptAll
from tests.test_fuzz import answered_by

#: Values that encode (the counts are read back from the records); ids of any shape.
PLAIN = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.text(max_size=6)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
SESSION_EVENTS = st.fixed_dictionaries(
    {
        "event_type": st.sampled_from(["session_start", "custom_event", "session_end", "x"]),
        "data": st.fixed_dictionaries(
            {}, optional={"session_uuid": st.one_of(PLAIN, st.sampled_from(["s1", "s2"]))}
        ),
    }
)
DICT_BATCHES = st.fixed_dictionaries(
    {"events": st.lists(st.one_of(SESSION_EVENTS, PLAIN), max_size=5)},
    optional={"mpid": PLAIN, "mp_deviceid": PLAIN},
)


@attrs.frozen
class Keep(AcceptAll):
    """AcceptAll that keeps the records' data."""

    data: list[bytes] = attrs.field(factory=list, repr=False, eq=False)

    def _count(self, entries: list[dict[str, str]]) -> None:
        super()._count(entries)
        self.data.extend(base64.b64decode(e["Data"]) for e in entries)


@pytest.fixture(name="firehose", scope="module")
def _firehose() -> Iterator[tuple[Any, Keep]]:
    """A Firehose client answered by :class:`Keep`, on this machine."""
    yield from answered_by(Keep())


@pytest.mark.parametrize("send_as_batch", [True, False])
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150)
@given(batches=st.lists(DICT_BATCHES, max_size=6))
def test_every_event_in_is_sent_failed_dropped_or_filtered_once(
    firehose: tuple[Any, Keep], send_as_batch: bool, batches: list[dict[str, Any]]
) -> None:
    """In = in a record (sent or failed) + dropped + filtered; no dict batch is rejected."""
    client, sink = firehose
    sink.data.clear()
    config = ForwarderSettings(
        delivery_stream_name="s", send_as_batch=send_as_batch, wait_for_complete_batch=True
    )
    forwarder = FirehoseForwarder(client, config, sleep=lambda _: None)
    result = forwarder.forward_many(batches) + forwarder.flush()
    assert result.rejected == ()
    assert result.failed == ()
    total = sum(len(b["events"]) for b in batches)
    sent = sum(len(json.loads(d)["events"]) for d in sink.data)
    assert sent + result.dropped_events + result.filtered_events == total


def test_an_id_python_cannot_print_does_not_reject_the_batch(
    firehose: tuple[Any, Keep],
) -> None:
    """An mpid of 5,000 digits (str() raises): the batch is not rejected after being counted.

    Its record cannot be encoded, so it fails with its 2 events; nothing is dropped twice.
    """
    client, _ = firehose
    config = ForwarderSettings(delivery_stream_name="s", wait_for_complete_batch=True)
    forwarder = FirehoseForwarder(client, config, sleep=lambda _: None)
    batch = {
        "mpid": 10**5000,
        "events": [{"event_type": "custom_event", "data": {"session_uuid": 10**5000}}, 7],
    }
    result = forwarder.forward_many([batch]) + forwarder.flush()
    assert result.rejected == ()
    assert result.dropped_events == 1
    assert [f.error_code for f in result.failed] == ["EncodingError"]
