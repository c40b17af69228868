"""What the commands share: exit codes, one-line errors, the AWS client, signals, progress."""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from streambridge._aws import assumed_role, build_client
from streambridge._files import open_private
from streambridge._logging import JsonFormatter
from streambridge._wire import fast_clients
from streambridge.cli._progress import json_logs
from streambridge.deadletter import DeadLetterFile, DeadLetterTarget
from streambridge.deadletter_remote import is_remote_target, remote_target
from streambridge.errors import ConfigurationError
from streambridge.metrics import Metrics
from streambridge.retry import RetryPolicy

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_AWS, EXIT_DESTINATION = 0, 1, 2, 3, 4
EXIT_DEAD_LETTER = 5  # a dead letter could not be written: what it held was not handed back
EXIT_INTERRUPTED = 130  # 128 + SIGINT; SIGTERM gives 143


class UsageError(Exception):
    """Bad arguments or input: one line, exit 2."""


class FailedError(Exception):
    """A failure already put into words, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def log_to_stderr(log_format: str = "text") -> None:
    """Send the library's warnings (retries exhausted, skipped records…) to stderr.

    ``log_format`` ``"json"``: one JSON object a line, with each warning's fields
    (:mod:`streambridge._logging`), the command's own lines (:func:`say`) included.
    """
    logger = logging.getLogger("streambridge")
    for old in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(old)
    handler = _StderrHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("streambridge: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    _CLI.setLevel(logging.INFO)  # the command's own lines (summaries) too


#: The command's own lines, when they are logged as JSON.
_CLI = logging.getLogger("streambridge.cli")


def say(message: str, *, prefix: bool = True, level: int = logging.INFO, **fields: Any) -> None:
    """One line of the command's own on stderr.

    It is ``streambridge: message``, as always, or with ``--log-format json`` a JSON object
    with ``fields`` (a summary's counts, an exit code). ``prefix=False``: the text line is
    written as it is (an indented detail line).
    """
    if json_logs():
        _CLI.log(level, message.strip(), extra=fields)
    else:
        print(f"streambridge: {message}" if prefix else message, file=sys.stderr)


def aws_client(
    args: argparse.Namespace,
    service: str,
    *,
    keys: tuple[str | None, str | None] = (None, None),
    attempts: int = 1,
) -> Any:
    """A client with botocore's own retries off (``attempts`` 1), or its standard ones.

    Credentials: ``keys`` (an access key pair from a settings or config file) when given —
    they win over the environment, as they did in the product the file comes from; else the
    AWS environment (variables, ``--profile``, the config files, a role).
    """
    import boto3  # noqa: PLC0415

    key_id, secret = keys
    if bool(key_id) != bool(secret):
        raise UsageError("the file gives an access key id or a secret access key, not both")
    if key_id and args.profile:
        raise UsageError(
            "the file holds access keys and --profile names a profile: use one of them"
        )
    # boto3 reads AWS_DEFAULT_REGION; AWS_REGION is what the other AWS SDKs and tools use
    region = args.region or os.environ.get("AWS_REGION") or None
    import botocore.session  # noqa: PLC0415

    session: Any = boto3.Session(
        profile_name=args.profile,
        region_name=region,
        botocore_session=fast_clients(botocore.session.get_session()),
    )
    if session.region_name is None:
        raise UsageError("no AWS region: pass --region or set AWS_REGION / AWS_DEFAULT_REGION")
    external_id = args.external_id or os.environ.get("STREAMBRIDGE_EXTERNAL_ID") or None
    try:
        role = assumed_role(args.role_arn, external_id, args.role_session_name)
    except ConfigurationError as exc:
        raise UsageError(f"{exc} (--role-arn)") from None
    return build_client(
        service,
        region=session.region_name,
        access_key_id=key_id or None,  # None: the session's (environment, profile, role…)
        secret_access_key=secret or None,
        session=session,
        endpoint_url=args.endpoint_url,
        attempts=attempts,
        role=role,
    )


def aws_options(parser: argparse.ArgumentParser) -> None:
    """The options every AWS command takes."""
    group = parser.add_argument_group("AWS")
    group.add_argument("--region", help="AWS region (default: the AWS environment's)")
    group.add_argument("--profile", help="a named profile from the AWS config files")
    group.add_argument("--endpoint-url", help="another endpoint (LocalStack, a local AWS…)")
    group.add_argument(
        "--quiet",
        action="store_true",
        help="no progress and no summary (errors and warnings are still said)",
    )
    group.add_argument(
        "--role-arn",
        metavar="ARN",
        help="assume this IAM role (in another account) with the credentials found, and act "
        "as it; its credentials are refreshed before they expire",
    )
    group.add_argument(
        "--external-id",
        metavar="ID",
        help="the External ID the role's trust policy requires (or STREAMBRIDGE_EXTERNAL_ID)",
    )
    group.add_argument(
        "--role-session-name", metavar="NAME", help="the role session's name (streambridge)"
    )
    group.add_argument(
        "--retry-budget",
        type=float,
        metavar="SECONDS",
        help="how long a failing call is retried (default 120); an endpoint that never "
        "answered within it ends the run (exit 3)",
    )


def metrics_options(parser: argparse.ArgumentParser) -> None:
    """``--metrics-port`` and ``--metrics-address``, for the long-running commands."""
    group = parser.add_argument_group("metrics")
    group.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics at http://ADDRESS:PORT/metrics while running (the "
        "'metrics' extra; docs/operations.md lists them)",
    )
    group.add_argument(
        "--metrics-address",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="the address --metrics-port listens on (default 127.0.0.1; 0.0.0.0 to be "
        "scraped from other hosts)",
    )


def start_metrics(
    args: argparse.Namespace, metrics: Metrics, half: str, stream: str
) -> Callable[[], None]:
    """Serve ``metrics`` when ``--metrics-port`` is given; the function that stops it."""
    if args.metrics_port is None:
        return lambda: None
    if not 0 < args.metrics_port < 65536:  # noqa: PLR2004 - TCP's ports
        raise UsageError(f"--metrics-port must be a TCP port, got {args.metrics_port}")
    from streambridge._prometheus import serve_metrics  # noqa: PLC0415 - only when asked

    try:
        return serve_metrics(
            metrics, half, [stream], port=args.metrics_port, address=args.metrics_address
        )
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None


def forwarding_options(parser: argparse.ArgumentParser) -> None:
    """``--put-mode`` and ``--newline``, the forwarder's options every forwarding command takes."""
    parser.add_argument(
        "--put-mode",
        choices=["auto", "batch", "single"],
        default="auto",
        help="auto (default): PutRecordBatch, and PutRecord once that is denied; batch: "
        "PutRecordBatch only; single: one PutRecord per record",
    )
    parser.add_argument(
        "--newline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="end every record with a newline, so S3 objects are JSON lines (default); "
        "--no-newline keeps mParticle's framing byte for byte",
    )


def retry_policy(args: argparse.Namespace, **schedule: float) -> RetryPolicy | None:
    """``--retry-budget`` as a retry policy with ``schedule``'s delays (None: the default)."""
    if args.retry_budget is None:
        return None
    if args.retry_budget <= 0:
        raise UsageError("--retry-budget must be more than 0 seconds")
    return RetryPolicy(max_attempts=1_000_000, max_elapsed=args.retry_budget, **schedule)


def open_dead_letters(spec: str | None, args: argparse.Namespace) -> DeadLetterTarget | None:
    """``--dead-letter``: a file (created 0600), ``s3://bucket/prefix`` or an SQS queue URL.

    A remote target's client comes from the AWS environment (``--profile``, ``--region``,
    ``--endpoint-url`` apply), not from access keys in a settings file.
    """
    if spec is None:
        return None
    if is_remote_target(spec):
        return remote_target(spec, lambda service: aws_client(args, service))
    try:
        return DeadLetterFile(spec)
    except OSError as exc:
        raise UsageError(f"cannot write {spec!r}: {exc.strerror}") from None


class StopNowError(Exception):
    """A second SIGINT / SIGTERM: stop now (what was built is carried, not lost)."""


class SourceError(Exception):
    """The input could not be read from AWS (an S3 listing or object): exit 3, with the fix."""


class Stop:
    """Which signal asked the command to stop (None: none yet).

    With ``again_interrupts``, a second signal raises in the main thread, to end a read
    blocked on a pipe; the forwarder then carries every record not delivered.
    """

    def __init__(self, *, again_interrupts: bool = False) -> None:
        self.signal: int | None = None
        self.again_interrupts = again_interrupts

    def set(self, signum: int = signal.SIGINT) -> None:
        if self.signal is None:
            self.signal = signum
        elif self.again_interrupts:
            raise StopNowError(f"stopped by a second {signal.Signals(signum).name}")

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""


def on_signals(handler: Callable[[int], None]) -> Any:
    """On SIGINT or SIGTERM, ask the command to stop cleanly (what was read is delivered)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {
        signum: signal.signal(signum, lambda number, _frame: handler(number))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }


def restore_signals(previous: Any) -> None:
    for signum, handler in (previous or {}).items():
        signal.signal(signum, handler)


def read_json_object(path: Path, what: str) -> dict[str, object]:
    """The JSON object in ``path`` (a settings or config file), or one line saying what is wrong."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{what} {str(path)!r} is not JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"{what} {str(path)!r} must hold a JSON object")
    return loaded


def open_output(path: Path, *, append: bool = False, force: bool = False) -> IO[str]:
    """The events file, created ``0600``: appended to when the run resumes, else new.

    A run that does not resume (no ``--checkpoints``) refuses to replace a file that holds
    something, unless ``force``: events of an earlier run are not thrown away unasked.
    """
    try:
        if not append and not force and path.is_file() and path.stat().st_size:
            raise UsageError(
                f"{str(path)!r} exists and is not empty: pass --force to replace it, or "
                f"--checkpoints FILE to resume (the events are then added to it)"
            )
        fd = open_private(path, append=append)
        return os.fdopen(fd, "a" if append else "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {str(path)!r}: {exc.strerror}") from None


def output_closed(stream: IO[str]) -> bool:
    """Whether ``stream`` is a pipe whose reader left (``| head`` ended), without writing.

    ``poll`` reports ``POLLERR`` on the write end of a pipe nobody reads any more, so an
    idle ``import | head`` ends as soon as ``head`` does, as ``tail -f`` does.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    if not hasattr(select, "poll"):  # pragma: no cover - not on Linux or macOS
        return False
    poller = select.poll()
    poller.register(fd, 0)  # no events asked for: POLLERR, POLLHUP and POLLNVAL only
    return any(mask & (select.POLLERR | select.POLLNVAL) for _, mask in poller.poll(0))


#: What the `local` extra brings: a missing one is a usage error naming it, not a traceback.
LOCAL_EXTRA = frozenset({"moto", "flask", "flask_cors", "werkzeug"})


def missing_local_extra(exc: ModuleNotFoundError, what: str) -> UsageError:
    """The usage error for ``what`` without the `local` extra; ``exc`` again if it is not that."""
    if (exc.name or "").split(".")[0] not in LOCAL_EXTRA:
        raise exc
    return UsageError(
        f"{what} needs the 'local' extra ({exc.name} is missing): pip install 'streambridge[local]'"
    )
