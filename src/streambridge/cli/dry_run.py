"""``streambridge forward --dry-run``: what Firehose would bill for an input, nothing sent.

Each batch is built into records as ``forward`` would build them (filters, exclusions,
framing, encoding), for each framing choice: the settings as given, one record per batch
(Send as Batch), one record per event, and one record per event with consecutive records
packed into records of up to Firehose's 1,000 KiB. For each, the records, their bytes and the
bytes Firehose bills (each record rounded up to the next 5 KB), so a user sees what a framing
costs before choosing it. Nothing is sent; a local input needs no AWS and no credentials
(an ``s3://`` input is still read from S3).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import attrs

from streambridge._json import encode_record
from streambridge._tally import Tally
from streambridge.forwarder.building import batch_records
from streambridge.forwarder.delivery import billed
from streambridge.forwarder.encoding import MAX_RECORD_BYTES, encode_payloads
from streambridge.forwarder.results import FLUSH, ForwardResult, Settled
from streambridge.forwarder.settings import ForwarderSettings

__all__ = ["PACK_BYTES", "Meter", "dry_run", "report"]

#: The most a packed record holds: Firehose's record limit (1,000 KiB).
PACK_BYTES = 1_024_000


@attrs.define
class Meter:
    """Records, their bytes and the bytes billed, for one framing."""

    records: int = 0
    size: int = 0
    billed: int = 0

    def add(self, record: bytes) -> None:
        """Count one record."""
        self.records += 1
        self.size += len(record)
        self.billed += billed(len(record))


class _Packer:
    """Consecutive records joined into records of up to :data:`PACK_BYTES` (greedy, in order)."""

    def __init__(self) -> None:
        self.meter = Meter()
        self._held = 0

    def add(self, record: bytes) -> None:
        if self._held and self._held + len(record) > PACK_BYTES:
            self.flush()
        self._held += len(record)

    def flush(self) -> None:
        if self._held:
            self.meter.records += 1
            self.meter.size += self._held
            self.meter.billed += billed(self._held)
            self._held = 0


def dry_run(
    batches: Iterable[object], settings: ForwarderSettings, delimiter: bytes
) -> tuple[list[tuple[str, Meter]], int]:
    """Each framing's meter for ``batches``, and how many batches (markers passed over)."""
    framings = {
        "as set": settings,
        "one record per batch (Send as Batch)": attrs.evolve(
            settings, send_as_batch=True, wait_for_complete_batch=False
        ),
        "one record per event": attrs.evolve(
            settings, send_as_batch=False, wait_for_complete_batch=False
        ),
    }
    if settings.wait_for_complete_batch:  # its sessions are joined later: counted per batch
        framings["as set"] = attrs.evolve(settings, wait_for_complete_batch=False)
    meters = {name: Meter() for name in framings}
    packer = _Packer()
    index = 0
    for batch in batches:
        if batch is FLUSH or isinstance(batch, Settled):
            continue  # markers, not batches
        for name, framing in framings.items():
            for record in _records(index, batch, framing, delimiter):
                meters[name].add(record)
                if name == "one record per event" and delimiter:
                    packer.add(record)
        index += 1
    packer.flush()
    out = list(meters.items())
    if delimiter:  # packing needs a delimiter between events (Firehose adds none)
        out.append(("one record per event, packed up to 1,000 KiB", packer.meter))
    return out, index


def _records(index: int, batch: Any, settings: ForwarderSettings, delimiter: bytes) -> list[bytes]:
    tally = Tally(ForwardResult)

    def encode(payloads: list[dict[str, Any]]) -> list[bytes]:
        records, _ = encode_payloads(
            payloads, encode=encode_record, limit=MAX_RECORD_BYTES, delimiter=delimiter
        )
        return records

    return batch_records(
        index,
        batch,
        settings,
        tally,
        encode=encode,
        sessions=None,
        now=time.monotonic,
        excluded=set(),
        on_drop=None,
    )


def report(meters: list[tuple[str, Meter]], batches: int) -> str:
    """The table ``forward --dry-run`` prints."""
    lines = [
        (
            f"dry run: {batches} batch(es) read; nothing was sent. Firehose bills each record "
            f"rounded up to the next 5 KB:"
        ),
        f"  {'framing':<46} {'records':>10} {'MB':>10} {'billed MB':>10} {'billed/MB':>10}",
    ]
    for name, meter in meters:
        ratio = meter.billed / meter.size if meter.size else 1.0
        lines.append(
            f"  {name:<46} {meter.records:>10,} {meter.size / 1e6:>10,.2f} "
            f"{meter.billed / 1e6:>10,.2f} {ratio:>9.2f}x"
        )
    return "\n".join(lines)
