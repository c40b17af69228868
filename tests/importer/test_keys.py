"""Unit tests of streambridge.importer.keys: extraction and the additionalPropertyMappings syntax."""

from __future__ import annotations

from typing import Any

import pytest

from streambridge import ConfigurationError
from streambridge.importer.keys import (
    MISSING,
    PropertyMapping,
    extract,
    format_property_mappings,
    lookup,
    parse_property_mappings,
)

RECORD: dict[str, Any] = {
    "properties": {"eventName": "my posthog event", "userId": "$userId", "foo": "bar"},
    "items": [{"sku": "A"}, {"sku": "B", "tags": ["x", "y"]}],
    "größe": {"日本": "ok"},
    "a.b": "literal",
    "a": {"b": "nested", "": {"x": 1}},
    "zero": 0,
    "nothing": None,
    "name": "Dana",
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("properties.eventName", "my posthog event"),
        ("items.1.sku", "B"),
        ("items.1.tags.0", "x"),
        ("größe.日本", "ok"),
        (
            "a.b",
            "nested",
        ),  # like the app: a dotted path walks, the literal "a.b" key is not reached
        ("a..x", 1),  # an empty segment is the key ""
        ("zero", 0),
        ("nothing", None),
        ("items", RECORD["items"]),
    ],
)
def test_extract_finds(path: str, expected: Any) -> None:
    """Nested keys, list indexes, unicode keys; values of every JSON type."""
    assert expected == extract(RECORD, path)


@pytest.mark.parametrize(
    "path",
    [
        "missing",
        "properties.missing",
        "items.2",
        "items.-1",
        "items.x",
        "name.0",
        "name.length",
        "zero.x",
        "nothing.x",
        "properties.eventName.x",
        "Properties.eventName",
        " properties.eventName",
        "items.\uff11",  # a full-width digit one is not an index
    ],
)
def test_extract_missing_raises_key_error(path: str) -> None:
    """Missing keys, out-of-range or non-decimal indexes, and steps into scalars raise KeyError."""
    with pytest.raises(KeyError):
        extract(RECORD, path)
    assert lookup(RECORD, tuple(path.split("."))) is MISSING


def test_extract_on_top_level_arrays() -> None:
    """A record that is an array is indexed like the app does (`0.event`)."""
    assert "x" == extract([{"event": "x"}], "0.event")


def test_key_error_names_the_path() -> None:
    """The KeyError says which path was missing."""
    with pytest.raises(KeyError, match=r"properties\.missing"):
        extract(RECORD, "properties.missing")


def test_readme_mapping() -> None:
    """The app's README configuration parses to two mappings."""
    assert (
        PropertyMapping("properties.userId", "distinct_id"),
        PropertyMapping("properties.foo", "foo"),
    ) == parse_property_mappings("properties.userId:distinct_id,properties.foo:foo")


def test_whitespace_and_empty_entries() -> None:
    """Whitespace around entries and ':' is trimmed; empty entries are ignored."""
    assert (PropertyMapping("user.email", "email"), PropertyMapping("props.foo", "foo")) == (
        parse_property_mappings(" user.email : email ,, props.foo:foo , ")
    )
    assert () == parse_property_mappings("")
    assert () == parse_property_mappings(None)
    assert () == parse_property_mappings(" , ,")


def test_targets_keep_dots_and_sources_may_repeat() -> None:
    """Targets are flat (dots literal); one source may feed several targets."""
    parsed = parse_property_mappings("a.b:my.prop,a.b:copy")
    assert ["my.prop", "copy"] == [m.target for m in parsed]
    assert ("a", "b") == parsed[0].path


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("props.foo", "'props.foo' has no ':'"),
        ("a:b:c", "'a:b:c' has more than one ':'"),
        (":foo", "':foo' has an empty source"),
        ("props.foo:", "'props.foo:' has an empty target"),
        ("ok:fine, bad", "'bad' has no ':'"),
        ("props.foo:foo\nuser.id:uid", "more than one ':'"),  # newlines are not separators
    ],
)
def test_malformed_mappings_are_configuration_errors(text: str, match: str) -> None:
    """Entries the app would write to "undefined" or "" are refused, naming the entry."""
    with pytest.raises(ConfigurationError, match=match):
        parse_property_mappings(text)


def test_mapping_text_must_be_text() -> None:
    """A number is not mapping text."""
    with pytest.raises(ConfigurationError, match="must be text"):
        parse_property_mappings(5)


def test_format_round_trip() -> None:
    """format_property_mappings writes the syntax parse_property_mappings reads."""
    mappings = parse_property_mappings(" a.b : c , d:e.f ")
    assert "a.b:c,d:e.f" == format_property_mappings(mappings)
    assert mappings == parse_property_mappings(format_property_mappings(mappings))
    assert "a.b:c" == str(mappings[0])
