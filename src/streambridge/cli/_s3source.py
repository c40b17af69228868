"""``streambridge forward s3://bucket/prefix/``: mParticle's S3 files, in key order, resumable.

mParticle's Amazon S3 integration writes newline-delimited JSON objects, one batch a line
(some users gzip them on the way). This source lists the objects under the prefix in key
order (``ListObjectsV2``'s order, paged as it goes: memory does not grow with the bucket),
reads each one as a stream — gzip detected by its magic bytes, not by its name — and hands
its lines to the same reader as a local file. A read cut short is taken up again where it
stopped (a ranged ``GetObject`` pinned to the object's ETag); an object that changes while
it is read, or a gzip stream that is not whole, is said, never half read in silence.

With ``--checkpoints`` the position is: how many objects are settled (and a hash of their
keys), and how many lines of the object after them (with their hash and the object's
ETag). A rerun checks both — an object added or removed among the settled ones, or a changed
object, is refused rather than skipped — and goes on from there: no batch read twice that
was settled, none skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from streambridge.cli._common import SourceError, UsageError
from streambridge.cli._input import UnreadableRestError
from streambridge.cli._resume import load_state, save_state
from streambridge.forwarder import Settled

__all__ = ["S3Resume", "S3Source", "is_s3_url"]

#: How much of an object one read asks for.
_CHUNK = 1 << 20
#: How often a read cut short is taken up again (each with a ranged GetObject).
_READ_ATTEMPTS = 5
_GZIP_MAGIC = b"\x1f\x8b"
_VERSION = 1


def is_s3_url(name: str) -> bool:
    """Whether the input names S3 objects (``s3://bucket/prefix``)."""
    return name.startswith("s3://")


class S3Source:
    """The objects under one S3 prefix, in key order, as lines.

    Attributes:
        url: ``s3://bucket/prefix`` as given.
        bucket: The bucket.
        prefix: The key prefix (may be empty: the whole bucket).
        objects: Objects opened so far.
        bytes_read: Bytes read from S3 (compressed, for gzip objects).
        key: The object being read (None before the first).
    """

    def __init__(self, client: Any, url: str) -> None:
        """The source of ``url``, read with the boto3 S3 ``client``.

        Raises:
            UsageError: ``url`` names no bucket.
        """
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise UsageError(f"{url!r} names no bucket: give s3://bucket/prefix/")
        self.client, self.url, self.bucket, self.prefix = client, url, bucket, prefix
        self.objects = 0
        self.bytes_read = 0
        self.key: str | None = None

    def listing(self) -> Iterator[tuple[str, str, int]]:
        """Every object under the prefix in key order: (key, ETag, size); folders left out.

        Raises:
            SourceError: The bucket cannot be listed (what to grant, or what is missing).
        """
        from botocore.exceptions import ClientError  # noqa: PLC0415

        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    key = str(item["Key"])
                    if key.endswith("/") and not item.get("Size"):
                        continue  # a console "folder"
                    yield key, str(item.get("ETag", "")), int(item.get("Size", 0))
        except ClientError as exc:
            arn = f"arn:aws:s3:::{self.bucket}"
            raise self._refused(exc, f"list {self.url}", "s3:ListBucket", arn) from None

    def _refused(self, exc: Any, what: str, action: str, resource: str) -> SourceError:
        error = exc.response.get("Error", {})
        code, said = str(error.get("Code", "")), str(error.get("Message", ""))
        hint = ""
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            hint = f": grant {action} on {resource} (streambridge.iam.s3_source_policy)"
        elif code in ("NoSuchBucket", "NoSuchKey", "404"):
            hint = ": check the bucket, the prefix and the region"
        return SourceError(f"cannot {what}: {code} ({said}){hint}")

    def lines(self, key: str, etag: str) -> Iterator[bytes]:
        """The object's lines, each with its newline (the last one may have none).

        Raises:
            UsageError: The object changed while it was read.
            UnreadableRestError: Its gzip stream is broken or cut short (what came before
                was yielded).
        """
        self.key = key
        self.objects += 1
        chunks = self._chunks(key, etag)
        first = next(chunks, b"")
        if first.startswith(_GZIP_MAGIC):
            chunks = _gunzipped(first, chunks)
        else:
            chunks = _chained(first, chunks)
        pending = b""
        for chunk in chunks:
            *complete, pending = (pending + chunk).split(b"\n")
            for line in complete:
                yield line + b"\n"
        if pending:
            yield pending

    def where(self, key: str) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{key}"

    def _chunks(self, key: str, etag: str) -> Iterator[bytes]:
        """The object's bytes as read; a read cut short goes on from where it stopped."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        offset, failures = 0, 0
        while True:
            ask: dict[str, str] = {"Bucket": self.bucket, "Key": key}
            if etag:
                ask["IfMatch"] = etag
            if offset:
                ask["Range"] = f"bytes={offset}-"
            try:
                body = self.client.get_object(**ask)["Body"]
                with contextlib.closing(body):  # its connection back, however the read ends
                    while chunk := body.read(_CHUNK):
                        offset += len(chunk)
                        self.bytes_read += len(chunk)
                        yield chunk
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                if code in ("PreconditionFailed", "412"):
                    raise UsageError(
                        f"{self.where(key)} changed while it was read (its ETag is no longer "
                        f"{etag}): run again to read it anew"
                    ) from None
                if code in ("InvalidRange", "416") and offset:
                    return  # read to its end already
                resource = f"arn:aws:s3:::{self.bucket}/{self.prefix}*"
                what = f"read {self.where(key)}"
                raise self._refused(exc, what, "s3:GetObject", resource) from None
            except (BotoCoreError, OSError):  # the connection broke, or the body was short
                failures += 1
                if failures >= _READ_ATTEMPTS:
                    raise
                time.sleep(min(0.2 * 2**failures, 5.0))
            else:
                return


def _chained(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _gunzipped(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """Gzip members one after another, decompressed as they come; a cut stream is refused."""
    inflate, fed = zlib.decompressobj(wbits=31), False
    for read in _chained(first, rest):
        data = read
        while data:
            fed = True
            try:
                yield inflate.decompress(data)
            except zlib.error as exc:
                raise UnreadableRestError(f"not a valid gzip stream ({exc})") from None
            data = b""
            if inflate.eof:  # another member may follow (concatenated gzip files)
                data, inflate, fed = inflate.unused_data, zlib.decompressobj(wbits=31), False
    if fed and not inflate.eof:
        raise UnreadableRestError("a gzip stream cut short (its end is missing)")


class S3Resume:
    """The checkpoint of an S3 prefix: the objects settled, and the lines of the next one.

    Attributes:
        lines: Lines read of the object being read (the skipped ones included).
    """

    def __init__(self, path: Any, source: S3Source) -> None:
        """Load ``path`` (none yet: from the first object).

        Raises:
            UsageError: The checkpoint is for another input, or not one of ours.
        """
        self.path, self.source = path, source
        self.input = source.url
        self.done = 0
        self._keys = hashlib.sha256()
        self.key: str | None = None
        self.etag = ""
        self.lines = 0
        self._hash = hashlib.sha256()
        self._state = load_state(path, self.input, ("objects", "keys_sha256"))
        if self._state is not None and self._state.get("version") != _VERSION:
            raise UsageError(f"--checkpoints {str(path)!r} is not a forward checkpoint")

    def objects(self) -> Iterator[tuple[str, str, Iterator[bytes], int]]:
        """The objects left to read: (key, ETag, its lines left, the number of lines skipped).

        Raises:
            UsageError: The settled objects are no longer the ones listed, or the object
                read last changed.
        """
        state = self._state or {"objects": 0, "keys_sha256": self._keys.hexdigest()}
        settled = int(state["objects"])
        for key, etag, _size in self.source.listing():
            if self.done < settled:
                self._keys.update(key.encode() + b"\n")
                self.done += 1
                if self.done == settled and self._keys.hexdigest() != state["keys_sha256"]:
                    self._moved(settled)
                continue
            self.key, self.etag, self.lines, self._hash = key, etag, 0, hashlib.sha256()
            lines = self.source.lines(key, etag)
            skipped = 0
            if state.get("key") == key:
                skipped = self._skip(lines, state)
            yield key, etag, self._counted(lines), skipped
            self._keys.update(key.encode() + b"\n")
            self.done += 1
            self.key = None
        if self.done < settled:
            self._moved(settled)

    def _moved(self, settled: int) -> None:
        raise UsageError(
            f"the objects under {self.input} are not the ones --checkpoints {str(self.path)!r} "
            f"settled: its first {settled} object(s) changed (one added, removed or renamed "
            f"among them). Remove the checkpoint to send them all again"
        )

    def _skip(self, lines: Iterator[bytes], state: dict[str, Any]) -> int:
        if state.get("etag") != self.etag:
            raise UsageError(
                f"{self.source.where(str(self.key))} changed since --checkpoints "
                f"{str(self.path)!r} was saved (another ETag). Remove the checkpoint to send "
                f"the prefix again"
            )
        wanted = int(state.get("lines", 0))
        for line in lines if wanted > 0 else ():
            self._hash.update(line)
            self.lines += 1
            if self.lines == wanted:
                break
        if self.lines != wanted or self._hash.hexdigest() != state.get("sha256"):
            raise UsageError(
                f"{self.source.where(str(self.key))} is not the object --checkpoints "
                f"{str(self.path)!r} was saved for: its first {wanted} line(s) changed"
            )
        return wanted

    def _counted(self, lines: Iterator[bytes]) -> Iterator[bytes]:
        for line in lines:
            self._hash.update(line)
            self.lines += 1
            yield line

    def settled(self, allowed: Callable[[], bool]) -> Settled:
        """A marker saving the position read so far once all before it is settled."""
        state: dict[str, Any] = {
            "version": _VERSION,
            "input": self.input,
            "objects": self.done,
            "keys_sha256": self._keys.hexdigest(),
        }
        if self.key is not None:
            state.update(
                key=self.key, etag=self.etag, lines=self.lines, sha256=self._hash.hexdigest()
            )

        def save() -> None:
            if allowed():
                save_state(self.path, state)

        return Settled(save)
