"""Unit tests of streambridge.importer.shards: order, start positions, pacing (no client)."""

from __future__ import annotations

from datetime import datetime, timezone

import attrs

from streambridge import ImporterSettings, RetryPolicy, ShardCheckpoint
from streambridge.importer.shards import SKEW_MARGIN, Shard, ShardTable, iterator_request

SETTINGS = ImporterSettings(stream_name="s", event_key="name")
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def listing(shard_id: str, *parents: str, closed: bool = False) -> dict[str, object]:
    """One ListShards entry."""
    entry: dict[str, object] = {"ShardId": shard_id, "SequenceNumberRange": {"Start": "1"}}
    if closed:
        entry["SequenceNumberRange"] = {"Start": "1", "EndingSequenceNumber": "9"}
    if parents:
        entry["ParentShardId"] = parents[0]
    if len(parents) > 1:
        entry["AdjacentParentShardId"] = parents[1]
    return entry


def test_children_wait_for_their_parents() -> None:
    """A child is readable once its parents are finished, or no longer listed."""
    table = ShardTable()
    table.update([listing("p", closed=True), listing("c", "p")], {}, start_position="TRIM_HORIZON")
    assert ["p"] == [s.shard_id for s in table.readable()]
    table.shards["p"].checkpoint = ShardCheckpoint(finished=True)
    assert ["c"] == [s.shard_id for s in table.readable()]
    table.shards["c"].parents = ("trimmed",)
    assert ["c"] == [s.shard_id for s in table.readable()]


def test_a_new_listing_marks_inheritance_and_closure() -> None:
    """Shards born from known parents inherit; a known shard's closed flag follows the listing."""
    table = ShardTable()
    table.update([listing("p")], {}, start_position="LATEST")
    assert not table.shards["p"].inherits
    table.update([listing("p", closed=True), listing("c", "p")], {}, start_position="LATEST")
    assert table.shards["p"].closed
    assert table.shards["c"].inherits
    assert {"p", "c"} == table.listed
    saved = {"old": ShardCheckpoint(sequence_number="5")}
    fresh = ShardTable()
    fresh.update([listing("old"), listing("kid", "old")], saved, start_position="LATEST")
    assert fresh.shards["kid"].inherits  # its parent had a checkpoint: known before
    assert ShardCheckpoint(sequence_number="5") == fresh.shards["old"].checkpoint


def test_a_shard_closed_before_a_latest_start_is_finished_at_once() -> None:
    """Closed, untouched, not inherited and LATEST: nothing in it comes after the start."""
    table = ShardTable()
    done = table.update([listing("a", closed=True)], {}, start_position="LATEST")
    assert ["a"] == [s.shard_id for s in done]
    assert table.shards["a"].checkpoint.finished
    other = ShardTable()
    assert [] == other.update([listing("a", closed=True)], {}, start_position="TRIM_HORIZON")


def test_iterator_after_the_checkpoint_or_where_reading_began() -> None:
    """A sequence number wins; else the saved start; nothing is saved again."""
    shard = Shard("a", (), closed=False, inherits=False)
    shard.checkpoint = ShardCheckpoint(sequence_number="42", start="TRIM_HORIZON")
    params, save = iterator_request(shard, SETTINGS, NOW)
    assert ("AFTER_SEQUENCE_NUMBER", "42", None) == (
        params["ShardIteratorType"],
        params["StartingSequenceNumber"],
        save,
    )
    shard.checkpoint = ShardCheckpoint(start="TRIM_HORIZON")
    assert ("TRIM_HORIZON", None) == (
        iterator_request(shard, SETTINGS, NOW)[0]["ShardIteratorType"],
        None,
    )
    shard.checkpoint = ShardCheckpoint(start=NOW.isoformat())
    params, save = iterator_request(shard, SETTINGS, NOW)
    assert ("AT_TIMESTAMP", NOW, None) == (params["ShardIteratorType"], params["Timestamp"], save)


def test_the_first_start_is_returned_to_be_saved() -> None:
    """LATEST is remembered a skew margin early; inherited shards read from the start."""
    shard = Shard("a", (), closed=False, inherits=False)
    params, save = iterator_request(shard, SETTINGS, NOW)
    assert "LATEST" == params["ShardIteratorType"]
    assert ShardCheckpoint(start=(NOW - SKEW_MARGIN).isoformat()) == save
    at = attrs.evolve(SETTINGS, start_position=NOW)
    params, save = iterator_request(shard, at, NOW)
    assert ("AT_TIMESTAMP", NOW.isoformat()) == (params["ShardIteratorType"], save and save.start)
    child = Shard("c", ("a",), closed=False, inherits=True)
    params, save = iterator_request(child, SETTINGS, NOW)
    assert ("TRIM_HORIZON", "TRIM_HORIZON") == (params["ShardIteratorType"], save and save.start)


def test_pacing_at_the_tip_and_behind() -> None:
    """At the tip: the idle interval; behind or a full call: the minimum interval."""
    shard = Shard("a", (), closed=False, inherits=False, failures=3)
    shard.read(records=0, lag=500, settings=SETTINGS, now=10.0)
    assert (True, 11.0, 0) == (shard.at_tip, shard.next_call, shard.failures)
    shard.read(records=5, lag=0, settings=SETTINGS, now=10.0)
    assert shard.at_tip
    shard.read(records=5, lag=7, settings=SETTINGS, now=10.0)
    assert (False, 10.2) == (shard.at_tip, shard.next_call)
    full = attrs.evolve(SETTINGS, records_per_call=5)
    shard.read(records=5, lag=0, settings=full, now=10.0)
    assert not shard.at_tip


def test_back_off_grows_with_failures() -> None:
    """Each failure in a row waits longer (capped), never less than the minimum interval."""
    shard = Shard("a", (), closed=False, inherits=False, at_tip=True)
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
    waits = []
    for _ in range(4):
        shard.back_off(backoff=policy, min_interval=0.2, now=0.0, random=lambda: 0.999)
        waits.append(round(shard.next_call, 2))
    assert [1.0, 2.0, 4.0, 4.0] == waits
    assert (4, False) == (shard.failures, shard.at_tip)
    shard.back_off(backoff=policy, min_interval=0.2, now=0.0, random=lambda: 0.0)
    assert 0.2 == shard.next_call


def test_caught_up_and_next_due() -> None:
    """Caught up: every readable shard at its tip without failures; next due: the soonest."""
    table = ShardTable()
    assert not table.caught_up()  # nothing listed yet
    table.update([listing("a"), listing("b")], {}, start_position="LATEST")
    table.shards["a"].at_tip = table.shards["b"].at_tip = True
    assert table.caught_up()
    table.shards["b"].failures = 1
    assert not table.caught_up()
    table.shards["a"].next_call, table.shards["b"].next_call = 5.0, 3.0
    assert 3.0 == table.next_due(9.0)
    assert 2.0 == table.next_due(2.0)
    table.shards["a"].undelivered = 4
    assert 4 == table.undelivered
