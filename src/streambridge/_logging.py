"""Logs a machine can search: the fields every warning carries, and one JSON object a line.

Each warning and error of the library passes its facts in logging's ``extra``, under the names
of :data:`FIELDS` (``stream``, ``shard``, ``sequence_number``, ``error_code``…), so they are
attributes of the ``LogRecord``: a handler of the application's sees them, and
:class:`JsonFormatter` (the command line's ``--log-format json``) writes them as keys of the
line, which CloudWatch Logs Insights and any log search filter on.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

__all__ = ["FIELDS", "JsonFormatter"]

#: The structured fields a warning or error may carry, and what each is.
FIELDS = {
    "stream": "the Kinesis Data Stream",
    "delivery_stream": "the Firehose delivery stream",
    "shard": "the shard id",
    "sequence_number": "a record's sequence number",
    "sub_sequence": "a KPL user record's place in its aggregate",
    "batch_index": "a batch's place in the input (0-based)",
    "error_code": "AWS's error code, or the kind of failure",
    "records": "how many records the line is about",
    "events": "how many events the line is about",
}

#: What every LogRecord has: anything else on a record came in ``extra``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, and each ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (values JSON cannot hold are written as text)."""
        moment = datetime.fromtimestamp(record.created, timezone.utc)
        document: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        )
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)
