"""What ``forward`` and ``import`` say at the end, and what ``forward`` keeps of no record.

The summary and the report of what went wrong (by input line, or S3 object and line); the
one-line failure for an error that carries records not delivered; the dead letters of input
lines that are no batch and of malformed events; and the records of a dead-letter file to
send again (``--replay``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from streambridge.cli._common import (
    EXIT_AWS,
    EXIT_DEAD_LETTER,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    FailedError,
    SourceError,
    Stop,
    StopNowError,
    UsageError,
    say,
)
from streambridge.cli._input import Places, Unreadable
from streambridge.cli._progress import Progress
from streambridge.deadletter import DeadLetterTarget, read_dead_letters
from streambridge.errors import DeadLetterError, DeliveryError, ForwardAbortedError
from streambridge.forwarder import DroppedEvent, ForwardResult
from streambridge.importer import ImporterSettings, ImportTotals

__all__ = [
    "drop_keeper",
    "import_summary",
    "keeper",
    "replayed",
    "report",
    "undelivered_failure",
]


def report(
    args: argparse.Namespace,
    result: ForwardResult,
    unreadable: list[str],
    places: Places | None,
    dead_path: str | None,
    letters: DeadLetterTarget | None,
) -> None:
    """The summary (stdout), then what went wrong, by input line where there are lines."""
    if not args.quiet:
        print(_summary(result, unreadable))
    for line in unreadable[:5]:
        say(f"  unreadable input: {line}", prefix=False, level=logging.WARNING)
    for rejected in result.rejected[:5]:
        place = places.describe(rejected.index) if places is not None else None
        at = f"at {place}" if place is not None else f"{rejected.index} (0-based)"
        say(
            f"  rejected batch {at}: {rejected.reason}",
            prefix=False,
            level=logging.WARNING,
            batch_index=rejected.index,
        )
    if result.failed:
        unwritten = letters.unwritten if letters is not None else 0
        if dead_path is None:
            where = " (keep them: --dead-letter)"
        elif unwritten >= len(result.failed):
            where = f"; NOT written to {str(dead_path)!r}"
        elif unwritten:
            written = len(result.failed) - unwritten
            where = f"; {written} written to {str(dead_path)!r}, {unwritten} NOT written"
        else:
            where = f"; written to {str(dead_path)!r}"
        say(
            f"  {len(result.failed)} record(s) not delivered{where}",
            prefix=False,
            level=logging.WARNING,
            records=len(result.failed),
        )


def undelivered_failure(
    exc: DeliveryError,
    letters: DeadLetterTarget | None,
    dead_path: str | None,
    stopped_signal: int | None = None,
    reached: list[str] | None = None,
) -> BaseException:
    """The one-line failure for an error that carries undelivered records (dead-lettered)."""
    count = len(exc.undelivered)
    cause = exc.__cause__
    said = (UsageError, StopNowError, SourceError)
    message = str(cause) if isinstance(cause, said) else str(exc)
    if reached:
        message += f"; the input was read up to {reached[-1]}, what follows was not read"
    if count and letters is not None:
        try:
            letters.write_undelivered(exc.undelivered, exc.error_code or "NotDelivered", str(exc))
        except DeadLetterError:
            message += (
                f" ({count} record(s) not delivered, and NOT written to {str(dead_path)!r}: "
                f"{letters.last_error}; send the input again)"
            )
            return FailedError(message, EXIT_DEAD_LETTER)
        message += f" ({count} record(s) not delivered, written to {str(dead_path)!r})"
        if letters.unwritten:
            message += f"; {letters.unwritten} failed record(s) before could NOT be written"
            return FailedError(message, EXIT_DEAD_LETTER)
    elif count:
        message += f" ({count} record(s) not delivered; --dead-letter FILE keeps them)"
    return FailedError(message, _exit_code(exc, stopped_signal))


def _exit_code(exc: DeliveryError, stopped_signal: int | None) -> int:
    """AWS refused (3); the input was unusable (2) or unreadable in AWS (3); a stop; else 1."""
    if not isinstance(exc, ForwardAbortedError):
        return EXIT_AWS
    cause = exc.__cause__
    if isinstance(cause, UsageError):
        return EXIT_USAGE
    if isinstance(cause, SourceError):
        return EXIT_AWS
    if isinstance(cause, StopNowError):
        return 128 + (stopped_signal or signal.SIGINT)
    return EXIT_FAILED


@attrs.frozen
class _Kept:
    """A dead letter for what never became a record: an input line, a malformed event."""

    kind: str
    fields: dict[str, Any]
    data: bytes
    record_is_json: bool = False

    def dead_letter_fields(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.fields}


def keeper(letters: DeadLetterTarget, kind: str) -> Callable[[int, str, bytes], None]:
    """Keep an unreadable input line (number, reason, bytes) as a dead letter."""

    def keep(number: int, reason: str, raw: bytes) -> None:
        with contextlib.suppress(DeadLetterError):  # counted in unwritten: exit 5 at the end
            letters.write([_Kept(kind, {"line": number, "reason": reason}, raw)])

    return keep


def drop_keeper(letters: DeadLetterTarget, places: Places | None) -> Callable[[DroppedEvent], None]:
    """Keep a malformed event as a dead letter, with its input line (and S3 object)."""

    def keep(drop: DroppedEvent) -> None:
        line = places.line(drop.batch) if places is not None else None
        fields: dict[str, Any] = {"line": line, "batch": drop.batch, "position": drop.position}
        source = places.source(drop.batch) if places is not None else None
        if source is not None:
            fields["object"] = source
        letters.write(
            [_Kept("dropped", {**fields, "reason": drop.reason}, drop.data, record_is_json=True)]
        )

    return keep


def replayed(
    path: Path, stopped: Stop, torn: Unreadable, progress: Progress | None = None
) -> Iterator[bytes]:
    """The records of a forwarder dead-letter file (importer lines are refused).

    A line that is not JSON — cut short by a crash or a full disk — is noted in ``torn`` (by
    its number) and left in the file; the whole lines around it are sent. A file with no
    dead-letter line at all is refused.
    """
    taken = 0
    try:
        letters = read_dead_letters(
            path,
            on_torn=lambda n, why: torn.append(
                f"line {n} is not a dead-letter line ({why}); it stays in the file"
            ),
        )
        for number, letter in enumerate(letters, start=1):
            if stopped.signal is not None:
                return
            taken += 1  # a dead letter, if not one to send
            if letter.kind in ("unreadable", "dropped"):  # never a record: nothing to send
                torn.append(f"entry {number} is an input {_NOT_SENT[letter.kind]}; not sent")
                continue
            if letter.kind != "failed":
                raise UsageError(
                    f"{str(path)!r} entry {number} is an importer dead letter ({letter.kind}); "
                    f"only the forwarder's can be replayed"
                )
            if progress is not None:
                progress.tick()
            yield letter.data
    except OSError as exc:
        raise UsageError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if torn and not taken:
        raise UsageError(f"{str(path)!r} is not a dead-letter file: {torn[0]}")


def _summary(result: ForwardResult, unreadable: list[str]) -> str:
    parts = [
        (
            f"sent {result.sent} record(s) in {result.api_calls} call(s) ({result.retries} "
            f"retries), {_megabytes(result.sent_bytes)}, billed as "
            f"{_megabytes(result.billed_bytes)} (each record rounded up to 5 KB: "
            f"{result.billing_ratio:.2f}x)"
        ),
        f"failed {len(result.failed)}",
        f"skipped {len(result.skipped)}",
        f"rejected {len(result.rejected)}",
        f"unreadable {len(unreadable)}",
        f"events filtered {result.filtered_events}",
        f"malformed events dropped {result.dropped_events}",
    ]
    return "; ".join(parts)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.2f} MB"


_NOT_SENT = {"unreadable": "line that was not a batch", "dropped": "event that was malformed"}


def import_summary(
    args: argparse.Namespace,
    settings: ImporterSettings,
    totals: ImportTotals,
    stopped: Stop,
    *,
    resumed: bool,
) -> int:
    """Say what an import did (stderr); its exit code."""
    where = f"; checkpoints in {args.checkpoints}" if args.checkpoints else ""
    by = f" ({stopped.name})" if stopped.signal is not None else ""
    if not args.quiet:  # errors and warnings below are said all the same
        say(
            f"imported {totals.events} event(s) from {totals.records} record(s) in "
            f"{totals.polls} poll(s); skipped {totals.skipped}; sink failures "
            f"{totals.sink_failures}; not delivered {totals.undelivered}; stopped: "
            f"{totals.stopped_because}{by}{where}",
            prefix=False,
            stream=settings.stream_name,
            events=totals.events,
            records=totals.records,
            skipped=totals.skipped,
            sink_failures=totals.sink_failures,
            undelivered=totals.undelivered,
            stopped_because=totals.stopped_because,
        )
    if totals.undelivered:
        say(
            f"error: {totals.undelivered} event(s) read were not delivered; the checkpoints did "
            f"not move past them, so the next run reads them again",
            level=logging.ERROR,
            stream=settings.stream_name,
            events=totals.undelivered,
        )
        return EXIT_FAILED
    if totals.records and not totals.events:
        say(
            f"error: every record read ({totals.records}) was skipped: check --event-key and "
            f"the records' format (--dead-letter FILE keeps them with reasons)",
            level=logging.ERROR,
            stream=settings.stream_name,
            records=totals.records,
        )
        return EXIT_FAILED
    if not totals.records and settings.start_position == "LATEST" and not resumed:
        say(
            "started at LATEST: records already in the stream are not read; use --start "
            "TRIM_HORIZON to read them",
            stream=settings.stream_name,
        )
    return EXIT_OK
