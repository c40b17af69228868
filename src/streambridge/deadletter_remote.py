"""Dead letters kept in AWS: an S3 prefix or an SQS queue (the Lambda's on-failure places).

The same lines as :class:`~streambridge.DeadLetterFile` writes, put where a Lambda function
(whose files do not outlive it) or a fleet of workers can keep them: the destinations AWS's
own event source mapping offers. Each target takes an injected boto3 client; a write is whole
or raises :class:`~streambridge.errors.DeadLetterError`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from streambridge.deadletter import DeadLetterTarget, Letter, dead_letter_line
from streambridge.errors import ConfigurationError

__all__ = [
    "SQS_MAX_BYTES",
    "S3DeadLetters",
    "SQSDeadLetters",
    "is_remote_target",
    "remote_target",
]


def _failure(exc: BaseException) -> str:
    """An AWS error in a few words (the code and message; no request details)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


class S3DeadLetters(DeadLetterTarget):
    """Dead letters as S3 objects: one JSON-lines object per write, under a prefix.

    Keys are ``<prefix>YYYY/MM/DD/HH/<uuid4>.jsonl`` (UTC), the layout Firehose uses, so a
    day's letters list together. A write is one ``PutObject``; an error, or an answer without
    an ``ETag``, raises :class:`~streambridge.errors.DeadLetterError` (botocore's own retries,
    as the client is configured, come first). Needs ``s3:PutObject`` on the prefix.

    Example::

        letters = S3DeadLetters(boto3.client("s3"), "s3://my-bucket/streambridge/dead/")
    """

    def __init__(
        self,
        client: Any,
        url: str,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        """Write under ``url`` (``s3://bucket/prefix``) with a boto3 S3 client."""
        super().__init__()
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not url.startswith("s3://") or not bucket:
            msg = f"not an S3 location: {url!r} (expected s3://bucket/prefix)"
            raise ConfigurationError(msg)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.target = f"s3://{bucket}/{prefix}"
        self._now = now

    def _send(self, lines: list[bytes]) -> None:
        key = f"{self.prefix}{self._now():%Y/%m/%d/%H}/{uuid.uuid4()}.jsonl"
        try:
            answer = self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=b"".join(lines),
                ContentType="application/x-ndjson",
            )
        except Exception as exc:  # noqa: BLE001 - whatever it is, the letters were not written
            raise self._refused(len(lines), _failure(exc)) from None
        if not isinstance(answer, dict) or not answer.get("ETag"):
            raise self._refused(len(lines), "PutObject's answer has no ETag (not believed)")


#: SQS's limit of one message, and of one SendMessageBatch, in bytes.
SQS_MAX_BYTES = 256 * 1024
_SQS_BATCH = 10


class SQSDeadLetters(DeadLetterTarget):
    """Dead letters as SQS messages: one letter a message, ten a ``SendMessageBatch``.

    Each message body is one letter (ASCII JSON: SQS refuses some Unicode characters). Entries
    SQS reports failed are sent again (three rounds); a letter still not taken, a letter over
    :data:`SQS_MAX_BYTES` (use an S3 prefix for large records), an error, or an answer that
    does not account for every entry raises :class:`~streambridge.errors.DeadLetterError`.
    Needs ``sqs:SendMessage`` on the queue.

    Example::

        letters = SQSDeadLetters(boto3.client("sqs"), queue_url)
    """

    def __init__(self, client: Any, queue_url: str, *, max_bytes: int = SQS_MAX_BYTES) -> None:
        """Send to ``queue_url`` with a boto3 SQS client."""
        super().__init__()
        self.client, self.queue_url, self.max_bytes = client, queue_url, max_bytes
        self.target = queue_url

    def line(self, item: Letter) -> bytes:
        """The letter in ASCII (a message body SQS takes whatever the record holds)."""
        return dead_letter_line(item, ascii_only=True)

    def _send(self, lines: list[bytes]) -> None:
        too_big = [n for n, line in enumerate(lines) if len(line) > self.max_bytes]
        if too_big:
            raise self._refused(
                len(lines),
                f"{len(too_big)} letter(s) over SQS's {self.max_bytes:,} bytes (the first "
                f"{len(lines[too_big[0]]):,}): use an S3 prefix for large records",
            )
        batch: list[bytes] = []
        for line in lines:
            if len(batch) == _SQS_BATCH or sum(map(len, batch)) + len(line) > self.max_bytes:
                self._send_batch(batch, len(lines))
                batch = []
            batch.append(line)
        self._send_batch(batch, len(lines))

    def _send_batch(self, batch: list[bytes], count: int) -> None:
        pending = {str(n): line for n, line in enumerate(batch)}
        why = ""
        for _ in range(3):
            if not pending:
                return
            entries = [{"Id": n, "MessageBody": line.decode()} for n, line in pending.items()]
            try:
                answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:  # noqa: BLE001 - whatever it is, the letters were not sent
                raise self._refused(count, _failure(exc)) from None
            ok = {e.get("Id") for e in answer.get("Successful", []) if isinstance(e, dict)}
            failed = [e for e in answer.get("Failed", []) if isinstance(e, dict)]
            if ok | {e.get("Id") for e in failed} != set(pending):
                raise self._refused(count, "SendMessageBatch's answer does not name every entry")
            why = "; ".join(f"{e.get('Code')}: {e.get('Message', '')}" for e in failed[:1])
            pending = {n: line for n, line in pending.items() if n not in ok}
        if pending:
            raise self._refused(count, f"SQS did not take {len(pending)} letter(s) ({why})")


#: A queue URL: ``https://sqs.<region>.amazonaws.com/<account>/<name>`` (or a local one).
_QUEUE_URL = re.compile(r"^https?://[^/]+/\d{12}/[^/]+$")


def is_remote_target(spec: str) -> bool:
    """Whether ``spec`` names an S3 prefix (``s3://…``) or an SQS queue URL, not a file."""
    return spec.startswith("s3://") or bool(_QUEUE_URL.match(spec))


def remote_target(spec: str, client: Callable[[str], Any]) -> DeadLetterTarget:
    """The target ``spec`` names: ``s3://bucket/prefix`` or an SQS queue URL.

    Args:
        spec: Where the letters go.
        client: Makes a boto3 client for a service name (``"s3"``, ``"sqs"``).

    Raises:
        ConfigurationError: ``spec`` is neither.
    """
    if spec.startswith("s3://"):
        return S3DeadLetters(client("s3"), spec)
    if _QUEUE_URL.match(spec):
        return SQSDeadLetters(client("sqs"), spec)
    msg = f"not an S3 prefix (s3://bucket/prefix) or an SQS queue URL: {spec!r}"
    raise ConfigurationError(msg)
