"""Least-privilege IAM policies for each half and mode (pure; printed by ``streambridge check``)."""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["forwarder_policy", "importer_policy"]


def _policy(actions: list[str], resource: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": [resource]}],
    }


def forwarder_policy(
    stream_arn: str, *, put_mode: Literal["auto", "batch", "single"] = "auto", check: bool = True
) -> dict[str, Any]:
    """The policy :class:`FirehoseForwarder` needs on one delivery stream.

    Args:
        stream_arn: ``arn:aws:firehose:{region}:{account}:deliverystream/{name}``.
        put_mode: ``"auto"`` and ``"batch"`` batch with ``firehose:PutRecordBatch`` (with
            ``"auto"``, ``firehose:PutRecord`` alone — mParticle's template policy — works too,
            one call per record); ``"single"`` needs only ``firehose:PutRecord``.
        check: Include ``firehose:DescribeDeliveryStream`` for :meth:`FirehoseForwarder.check`.
    """
    actions = ["firehose:DescribeDeliveryStream"] if check else []
    actions.append("firehose:PutRecord" if put_mode == "single" else "firehose:PutRecordBatch")
    return _policy(actions, stream_arn)


def importer_policy(stream_arn: str) -> dict[str, Any]:
    """The policy :class:`KinesisImporter` needs on one stream (``…:stream/{name}``).

    ``kinesis:DescribeStream`` in place of ``kinesis:ListShards`` (PostHog's documented policy)
    works too: the importer then lists shards with ``DescribeStream``, at its lower rate limit.
    """
    return _policy(
        ["kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"], stream_arn
    )
