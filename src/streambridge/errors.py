"""The exceptions streambridge raises, under one root.

The tree::

    StreambridgeError
    ├── ConfigurationError (ValueError)       bad settings: a name, a value, a combination
    ├── InvalidBatchError (ValueError)        an input batch that cannot be read at all
    ├── EncodingError (ValueError)            a value that cannot be encoded as JSON
    ├── DecodeError (ValueError)              a Kinesis record that is not JSON we can read
    ├── UnusableRecordError (ValueError)      a decoded record that cannot become a PostHog event
    ├── MalformedAnswerError                  a 200 answer that is not well formed (cut short…)
    ├── DeadLetterError (OSError)             a dead letter could not be written: not handed back
    ├── SinkError                             an importer sink could not deliver events
    │   ├── PostHogUnavailableError           PostHog unreachable or failing for the whole budget
    │   └── FatalSinkError                    retrying cannot help: the importer stops
    │       ├── PostHogAuthError (PermissionError)  PostHog refused the API key
    │       └── PostHogRefusedError           another answer retrying cannot fix (a wrong host)
    └── DeliveryError                         AWS refused a call in a way retrying cannot fix
        ├── StreamNotFoundError               the (delivery) stream does not exist (here)
        ├── StreamNotReadyError               a delivery stream not ACTIVE / not Direct PUT
        ├── ForwardAbortedError               forwarding stopped on an unexpected error
        └── AccessDeniedError (PermissionError)  the credentials lack a permission

Partial failure is *not* an exception: records that fail after retries come back in
:class:`streambridge.ForwardResult`. A :class:`DeliveryError` is raised only when nothing
can go on, and it carries every record that was built but not delivered
(:attr:`DeliveryError.undelivered`) together with the result so far
(:attr:`DeliveryError.result`), so a caller can re-drive or dead-letter them.

Messages say what to do, and name the thing they are about: a Kinesis *stream* or a Firehose
*delivery stream*. They never contain credentials.

This module is part of the shared base: both halves raise these errors, and it imports
neither half. :class:`DeliveryError` is generic in the type of its ``result``: the forwarder
raises ``DeliveryError[ForwardResult]`` (the importer's ``result`` is None), so the base needs
no name from the forwarder.
"""

from __future__ import annotations

from typing import Any, Generic

from typing_extensions import TypeVar

#: The type of :attr:`DeliveryError.result`: ``ForwardResult`` for the forwarder (a bare
#: ``DeliveryError`` is ``DeliveryError[Any]``, so annotations need not name it).
ResultT = TypeVar("ResultT", default=Any)

__all__ = [
    "AccessDeniedError",
    "ConfigurationError",
    "DeadLetterError",
    "DecodeError",
    "DeliveryError",
    "EncodingError",
    "FatalSinkError",
    "ForwardAbortedError",
    "InvalidBatchError",
    "MalformedAnswerError",
    "PostHogAuthError",
    "PostHogRefusedError",
    "PostHogUnavailableError",
    "SinkError",
    "StreamNotFoundError",
    "StreamNotReadyError",
    "StreambridgeError",
    "UnusableRecordError",
]


class StreambridgeError(Exception):
    """Root of every exception streambridge raises on purpose."""


class ConfigurationError(StreambridgeError, ValueError):
    """A setting has an unknown name, a bad value, or a bad combination.

    The message names the setting; it never repeats a credential.
    """


class InvalidBatchError(StreambridgeError, ValueError):
    """An input batch cannot be processed at all (not a JSON object, ``events`` not a list).

    The forwarder catches it, records the batch under ``ForwardResult.rejected`` with
    :attr:`reason`, and goes on with the next batch.

    Attributes:
        reason: A short, stable description of what is wrong with the batch.
    """

    def __init__(self, reason: str) -> None:
        """Create the error from a short reason such as ``"events is not a list"``."""
        super().__init__(reason)
        self.reason = reason


class EncodingError(StreambridgeError, ValueError):
    """A value cannot be encoded as JSON (for example a float NaN or a non-string key)."""


class DecodeError(StreambridgeError, ValueError):
    """A Kinesis record's data cannot be decoded (not UTF-8 JSON, bad gzip, empty…).

    The importer skips such a record with :attr:`reason` and moves its checkpoint past it.

    Attributes:
        reason: A short, stable description such as ``"not valid UTF-8"``.
    """

    def __init__(self, reason: str) -> None:
        """Create the error from a short reason."""
        super().__init__(reason)
        self.reason = reason


class UnusableRecordError(StreambridgeError, ValueError):
    """A decoded record cannot become a PostHog event (no event name, bad ``distinct_id``…).

    Attributes:
        reason: A short, stable description such as ``"no event name at 'properties.name'"``.
    """

    def __init__(self, reason: str) -> None:
        """Create the error from a short reason."""
        super().__init__(reason)
        self.reason = reason


class MalformedAnswerError(StreambridgeError):
    """An AWS answer with HTTP 200 that is not well formed: cut short, garbled, of another shape.

    The outcome of such a call is unknown, so it is treated as not done: the forwarder sends
    the call's records again, the importer asks again. Neither shell lets it escape; it shows
    as the ``"MalformedAnswer"`` error code of records that still failed when the retry budget
    ran out. The ``answers`` module of each half decides what "well formed" means per operation.

    Attributes:
        operation: The API operation (``"PutRecordBatch"``, ``"GetRecords"``…).
    """

    code = "MalformedAnswer"

    def __init__(self, message: str, *, operation: str) -> None:
        """Create the error for ``operation``."""
        super().__init__(message)
        self.operation = operation

    @classmethod
    def because(cls, operation: str, what: str) -> MalformedAnswerError:
        """The error for a 200 answer of ``operation`` that ``what`` (``"has no RecordId"``)."""
        return cls(
            f"{operation} answered 200 but {what}: the outcome is unknown, so it is treated as "
            f"not done (retried)",
            operation=operation,
        )

    @classmethod
    def unparsable(cls, operation: str, exc: Exception) -> MalformedAnswerError:
        """The error for an answer of ``operation`` that could not be parsed (``exc``)."""
        return cls(
            f"{operation} answered with a body that could not be parsed "
            f"({type(exc).__name__}: {exc}): the outcome is unknown, so it is treated as not "
            f"done (retried)",
            operation=operation,
        )


class DeadLetterError(StreambridgeError, OSError):
    """A dead letter could not be written (a full disk, a bucket or queue refusing it).

    streambridge's own dead-letter targets (:class:`~streambridge.DeadLetterFile`, the S3 and
    SQS targets) raise it, and it is never swallowed: a record whose dead letter was not
    written is not handed back. The importer does not checkpoint past it and stops; the KCL
    processor exits without a checkpoint; the Lambda handler reports the record in
    ``batchItemFailures``; the forwarder keeps the record in ``ForwardResult.failed`` and
    counts it in :attr:`~streambridge.DeadLetterFile.unwritten`. (A user callback that raises
    anything else is logged and ignored.)

    Attributes:
        unwritten: How many dead letters the failing write held.
        target: Where they were to go (a path, ``s3://…``, a queue URL).
    """

    def __init__(self, message: str, *, unwritten: int, target: str) -> None:
        """A failed write of ``unwritten`` letters to ``target``."""
        super().__init__(message)
        self.unwritten = unwritten
        self.target = target
        self.why = message

    def __str__(self) -> str:
        """The message (OSError would show its arguments as a tuple)."""
        return str(self.args[0])

    def __reduce__(self) -> tuple[object, ...]:
        """Picklable, keyword arguments included."""
        return (_rebuild_dead_letter_error, (str(self), self.unwritten, self.target))


def _rebuild_dead_letter_error(message: str, unwritten: int, target: str) -> DeadLetterError:
    return DeadLetterError(message, unwritten=unwritten, target=target)


class SinkError(StreambridgeError):
    """An importer sink could not deliver events; the importer reads them again later.

    Any exception from a sink has that effect; this class (and its subclasses) is what
    streambridge's own sinks raise, so that callers can tell a sink failure from a bug.
    """


class PostHogUnavailableError(SinkError):
    """PostHog could not be reached, or kept answering 5xx / 429, for the whole retry budget."""


class FatalSinkError(SinkError):
    """A sink failure that retrying cannot fix: the importer stops and raises it.

    A sink of your own may raise it (or a subclass) too. The checkpoint does not move past
    the events of the failing call.
    """


class OutputClosedError(FatalSinkError, BrokenPipeError):
    """The events' output was closed by its reader (``| head``): the run ends there.

    The events of the failing call were not written, and their checkpoint did not move.
    """


class PostHogAuthError(FatalSinkError, PermissionError):
    """PostHog refused the project API key (HTTP 401 or 403)."""


class PostHogRefusedError(FatalSinkError):
    """PostHog answered in a way retrying cannot fix (a 4xx other than 400, 401, 403, 413)."""


class DeliveryError(StreambridgeError, Generic[ResultT]):
    """AWS refused a call for a reason retrying cannot fix.

    Raised by both halves; for the importer ``undelivered`` is empty and ``result`` None.
    Raised by the forwarder it is a ``DeliveryError[ForwardResult]``: ``result`` is the
    :class:`~streambridge.ForwardResult` so far.

    Attributes:
        error_code: The AWS error code (``"ResourceNotFoundException"``…), when there is one.
        undelivered: Every encoded record built by the forwarder and not delivered, in order.
        result: What had been delivered, failed, skipped and rejected before the error.
    """

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        undelivered: tuple[bytes, ...] = (),
        result: ResultT | None = None,
    ) -> None:
        """Create the error; the forwarder fills in ``undelivered`` and ``result``."""
        super().__init__(message)
        self.error_code = error_code
        self.undelivered = undelivered
        self.result = result


class StreamNotFoundError(DeliveryError[ResultT]):
    """The delivery stream (forwarder) or stream (importer) does not exist in this region."""


class StreamNotReadyError(DeliveryError[ResultT]):
    """The delivery stream exists but cannot take Direct PUT records (status or source type)."""


class ForwardAbortedError(DeliveryError[ResultT]):
    """Forwarding stopped on an error no rule foresaw: the input iterable raised, or a bug.

    Like every :class:`DeliveryError` raised by the forwarder, it carries every record built
    and not delivered (:attr:`~DeliveryError.undelivered`) and the result so far; the
    original exception is its ``__cause__``. A bad batch never causes it: a batch that
    cannot be processed is rejected with a reason, and the others go on.
    """


class AccessDeniedError(DeliveryError[ResultT], PermissionError):
    """The credentials lack a permission; the message names the IAM action to grant."""
