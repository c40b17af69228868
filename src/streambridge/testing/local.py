"""An embedded local AWS: moto's server on 127.0.0.1, and helpers to use it (the ``local`` extra).

Example::

    with local_aws() as aws:
        aws.create_delivery_stream("events")
        forwarder = FirehoseForwarder(aws.client("firehose"), settings)
        forwarder.forward_many(batches)
        assert len(aws.delivered("events")) == ...
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import boto3
from botocore.config import Config

from streambridge._json import documents

if TYPE_CHECKING:
    from mypy_boto3_firehose import FirehoseClient
    from mypy_boto3_s3 import S3Client

__all__ = ["ACCOUNT_ID", "Credentials", "LocalAWS", "local_aws", "split_records"]

ACCOUNT_ID = "123456789012"  # moto's default account
_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@attrs.frozen
class Credentials:
    """An access key pair (of an IAM user made by :meth:`LocalAWS.iam_user`).

    Attributes:
        access_key_id: The access key id.
        secret_access_key: The secret (not shown in ``repr``).
    """

    access_key_id: str
    secret_access_key: str = attrs.field(repr=False)


@attrs.frozen
class LocalAWS:
    """A running local AWS (moto's server on 127.0.0.1) and helpers to use it.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
        region: The region clients are made for.
    """

    endpoint_url: str
    region: str = "us-east-1"

    def client(
        self, service: str, *, max_attempts: int = 1, credentials: Credentials | None = None
    ) -> Any:
        """A boto3 client for ``service`` on this endpoint (botocore retries off by default).

        Args:
            service: ``"firehose"``, ``"kinesis"``, ``"s3"``, ``"iam"``…
            max_attempts: botocore's attempts per call.
            credentials: Sign with these (an :meth:`iam_user`'s) instead of the test keys.
        """
        keys = _CREDENTIALS
        if credentials is not None:
            keys = {
                "aws_access_key_id": credentials.access_key_id,
                "aws_secret_access_key": credentials.secret_access_key,
            }
        return boto3.client(  # type: ignore[call-overload]
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"mode": "standard", "total_max_attempts": max_attempts}),
            **keys,
        )

    def iam_user(self, name: str, policy: dict[str, Any]) -> Credentials:
        """Create an IAM user whose only permissions are ``policy``; return its access key.

        The policy is enforced inside :meth:`enforcing_iam` only. moto matches Firehose and
        Kinesis actions against ``"Resource": "*"`` alone (moto issue 9581): write ``"*"``
        where a real policy names the stream's ARN.
        """
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    @contextmanager
    def enforcing_iam(self) -> Iterator[None]:
        """Within the block, every request must be signed by an IAM user allowed to make it.

        Requests signed with the default test keys are refused then (``InvalidClientTokenId``):
        use :meth:`iam_user` credentials. moto's setting is process-wide, so do not run other
        tests against the same server concurrently.
        """
        self._moto_api("reset-auth", b"0")
        try:
            yield
        finally:
            self._moto_api("reset-auth", b"inf")

    def _moto_api(self, path: str, body: bytes = b"") -> None:
        request = urllib.request.Request(  # noqa: S310 - always our own http://127.0.0.1 URL
            f"{self.endpoint_url}/moto-api/{path}",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()

    def environment(self, credentials: Credentials | None = None) -> dict[str, str]:
        """Environment variables that point any AWS SDK or tool (a subprocess) at this endpoint.

        Merge them into ``os.environ`` for a subprocess:
        ``subprocess.run(cmd, env={**os.environ, **aws.environment()})``.
        """
        key_id = _CREDENTIALS["aws_access_key_id"]
        secret = _CREDENTIALS["aws_secret_access_key"]
        if credentials is not None:
            key_id, secret = credentials.access_key_id, credentials.secret_access_key
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    def reset(self) -> None:
        """Forget every stream, bucket, object and IAM user (moto's ``/moto-api/reset``)."""
        self._moto_api("reset")

    def create_delivery_stream(
        self, name: str, *, bucket: str | None = None, append_delimiter: bool = False
    ) -> str:
        """Create a Direct PUT delivery stream writing to a new S3 bucket; return the bucket.

        Args:
            name: The delivery stream.
            bucket: The bucket (default: ``<name>-bucket``).
            append_delimiter: Configure an ``AppendDelimiterToRecord`` processor (moto stores
                and describes it; it does not apply it).
        """
        bucket = bucket or f"{name.lower()}-bucket"
        s3: S3Client = self.client("s3")
        s3.create_bucket(Bucket=bucket)
        firehose: FirehoseClient = self.client("firehose")
        destination: dict[str, Any] = {
            "RoleARN": f"arn:aws:iam::{ACCOUNT_ID}:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": f"{name}/",
        }
        if append_delimiter:
            destination["ProcessingConfiguration"] = {
                "Enabled": True,
                "Processors": [
                    {
                        "Type": "AppendDelimiterToRecord",
                        "Parameters": [{"ParameterName": "Delimiter", "ParameterValue": "\\n"}],
                    }
                ],
            }
        firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration=destination,  # type: ignore[arg-type]
        )
        return bucket

    def create_stream(self, name: str, shards: int = 1) -> None:
        """Create a Kinesis Data Stream with ``shards`` shards."""
        self.client("kinesis").create_stream(StreamName=name, ShardCount=shards)

    def put_records(
        self, name: str, records: Iterable[bytes | str | dict[str, Any]], *, key: str | None = None
    ) -> int:
        """Put records on a Kinesis stream (dicts as JSON); spread over shards unless ``key``.

        Returns:
            How many records were put.
        """
        kinesis = self.client("kinesis")
        entries = [
            {
                "Data": json.dumps(item).encode() if isinstance(item, dict) else item,
                "PartitionKey": key or f"pk-{n}",
            }
            for n, item in enumerate(records)
        ]
        for start in range(0, len(entries), 500):
            kinesis.put_records(StreamName=name, Records=entries[start : start + 500])
        return len(entries)

    def read_stream(self, name: str) -> list[bytes]:
        """Every record's data on a Kinesis stream, shard by shard, from the start."""
        kinesis = self.client("kinesis")
        out: list[bytes] = []
        for shard in kinesis.list_shards(StreamName=name)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                out.extend(record["Data"] for record in page["Records"])
                if not page["Records"] or page.get("MillisBehindLatest") == 0:
                    break
                iterator = page.get("NextShardIterator")
        return out

    def delivered_objects(self, name: str, *, bucket: str | None = None) -> list[bytes]:
        """The S3 objects the delivery stream wrote (moto: one per call, in no set order).

        The bucket and prefix are the delivery stream's own (``DescribeDeliveryStream``), so a
        stream created elsewhere, with another prefix, is read right; ``bucket`` overrides.
        """
        firehose: FirehoseClient = self.client("firehose")
        described = firehose.describe_delivery_stream(DeliveryStreamName=name)
        destination = described["DeliveryStreamDescription"]["Destinations"][0]
        s3_destination: Any = destination.get(
            "ExtendedS3DestinationDescription"
        ) or destination.get("S3DestinationDescription", {})
        bucket = bucket or str(s3_destination["BucketARN"]).split(":::", 1)[1]
        prefix = s3_destination.get("Prefix") or ""
        s3: S3Client = self.client("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [
            s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for page in pages
            for item in page.get("Contents", [])
        ]

    def delivered(self, name: str, *, bucket: str | None = None) -> list[Any]:
        """Every JSON record the delivery stream delivered, decoded (order across calls unset)."""
        return [
            record
            for body in self.delivered_objects(name, bucket=bucket)
            for record in split_records(body)
        ]


def split_records(body: bytes) -> list[Any]:
    """Split concatenated JSON records, newline-delimited or not, into decoded values."""
    return documents(body.decode("utf-8"))


@contextmanager
def local_aws(*, region: str = "us-east-1", port: int = 0) -> Iterator[LocalAWS]:
    """Run moto's server on 127.0.0.1 (``port``; 0: a free one) for the duration of the block.

    Raises:
        OSError: ``port`` is taken (``EADDRINUSE``).

    State is process-global in moto: call :meth:`LocalAWS.reset` between tests.
    """
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - the `local` extra

    if port:  # moto's thread would fail to bind and its start() wait for ever: say it now
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))  # OSError (EADDRINUSE) when the port is taken
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield LocalAWS(endpoint_url=f"http://{host}:{port}", region=region)
    finally:
        server.stop()
