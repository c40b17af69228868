"""Hypothesis properties of the pure core."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streambridge import ConfigurationError, DecodeError
from streambridge.importer.decoding import decode_record
from streambridge.importer.keys import (
    PropertyMapping,
    extract,
    format_property_mappings,
    parse_property_mappings,
)
from tests.strategies import json_values

segments = st.one_of(st.text(max_size=5), st.integers(min_value=0, max_value=5).map(str))


@given(json_values, st.lists(segments, max_size=5))
def test_extraction_is_total(value: Any, path: list[str]) -> None:
    """Over any JSON value and path, extract returns a value or raises KeyError, nothing else."""
    with contextlib.suppress(KeyError):
        extract(value, ".".join(path))


@given(json_values, st.lists(segments, min_size=1, max_size=4))
def test_extraction_finds_what_was_put(value: Any, path: list[str]) -> None:
    """A value nested under a path of object keys is found at that path."""
    document: Any = value
    for segment in reversed(path):
        document = {segment: document}
    assert value == extract(document, tuple(path))


side = st.text(alphabet=st.characters(blacklist_characters=",:"), min_size=1, max_size=10).filter(
    lambda s: s.strip() == s and s
)


@given(st.lists(st.builds(PropertyMapping, side, side), max_size=6))
def test_parse_format_parse_is_stable(mappings: list[PropertyMapping]) -> None:
    """Formatting parsed mappings and parsing again gives the same mappings."""
    text = format_property_mappings(mappings)
    assert tuple(mappings) == parse_property_mappings(text)


@given(st.text(max_size=40))
def test_any_text_parses_or_is_a_configuration_error(text: str) -> None:
    """Arbitrary mapping text either parses (stably) or raises ConfigurationError."""
    try:
        parsed = parse_property_mappings(text)
    except ConfigurationError:
        return
    assert parsed == parse_property_mappings(format_property_mappings(parsed))


@given(st.binary(max_size=200))
def test_decoding_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    """Any bytes decode to values or raise DecodeError with a reason; nothing else escapes."""
    reason = ""
    try:
        values = decode_record(data)
    except DecodeError as exc:
        reason = exc.reason
        values = []
    assert bool(reason) != bool(values)


@given(st.lists(json_values, min_size=1, max_size=4), st.booleans())
def test_ndjson_and_gzip_round_trip(values: list[Any], compress: bool) -> None:
    """Newline-delimited JSON, optionally gzipped, decodes to the same values in order."""
    import gzip  # noqa: PLC0415

    data = b"\n".join(json.dumps(v).encode() for v in values)
    if compress:
        data = gzip.compress(data)
    assert values == decode_record(data)
