"""The public surface: exports, version, typing marker, import hygiene."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module
from importlib.metadata import version
from pathlib import Path

import pytest

import streambridge


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and lists exactly the public names of the package."""
    public = {
        n
        for n in dir(streambridge)
        if not n.startswith("_") and not isinstance(getattr(streambridge, n), type(streambridge))
    }
    public -= {"annotations", "TYPE_CHECKING", "Any"}
    assert sorted(streambridge.__all__) == streambridge.__all__
    assert public | {"__version__"} == set(streambridge.__all__)


#: The top-level names of 0.1 (before the two halves had packages): all stay importable.
NAMES_OF_0_1 = [
    "AccessDeniedError",
    "ConfigurationError",
    "DeadLetter",
    "DeadLetterFile",
    "DecodeError",
    "DeliveryError",
    "DeliveryStreamInfo",
    "EncodingError",
    "FailedRecord",
    "FatalSinkError",
    "FirehoseForwarder",
    "ForwardAbortedError",
    "ForwardResult",
    "ForwarderSettings",
    "ImportResult",
    "ImportTotals",
    "ImporterSettings",
    "InvalidBatchError",
    "JsonLinesSink",
    "KinesisImporter",
    "MalformedAnswerError",
    "MemoryCheckpointStore",
    "PostHogAuthError",
    "PostHogEvent",
    "PostHogRefusedError",
    "PostHogSink",
    "PostHogUnavailableError",
    "RejectedBatch",
    "RetryPolicy",
    "SQLiteCheckpointStore",
    "SinkError",
    "SinkFailure",
    "SinkRefusal",
    "SkippedBatch",
    "SkippedRecord",
    "StreamNotFoundError",
    "StreamNotReadyError",
    "StreambridgeError",
    "UnusableRecordError",
    "__version__",
    "read_dead_letters",
]
#: The types users annotate with.
ANNOTATION_TYPES = ["CheckpointStore", "PutMode", "ShardCheckpoint", "Sink", "StartPosition"]


def test_the_names_of_0_1_and_the_annotation_types_are_exported() -> None:
    """Every earlier top-level name stays; the types users annotate with are exported too."""
    assert set(NAMES_OF_0_1) | set(ANNOTATION_TYPES) <= set(streambridge.__all__)
    for name in [*NAMES_OF_0_1, *ANNOTATION_TYPES]:
        assert getattr(streambridge, name) is not None


@pytest.mark.parametrize(
    "package", ["streambridge.forwarder", "streambridge.importer", "streambridge.testing"]
)
def test_subpackage_all_is_sorted_complete_and_the_same_objects(package: str) -> None:
    """Each half's __all__ is sorted, lists its public names, and shares them with the top."""
    module = import_module(package)
    public = {
        n
        for n in dir(module)
        if not n.startswith("_") and not isinstance(getattr(module, n), type(streambridge))
    }
    public -= {"annotations", "TYPE_CHECKING"}
    # sorted as ruff keeps __all__ (RUF022): constants, then classes, then functions
    kind = lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n)  # noqa: E731
    assert sorted(module.__all__, key=kind) == module.__all__
    assert public == set(module.__all__)
    for name in module.__all__:
        if name in streambridge.__all__:
            assert getattr(module, name) is getattr(streambridge, name)


def test_unknown_attribute() -> None:
    """A missing name raises AttributeError as for any module."""
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        streambridge.Nope  # noqa: B018
    with pytest.raises(AttributeError, match=r"'streambridge\.forwarder' has no attribute 'Nope'"):
        streambridge.forwarder.Nope  # noqa: B018


def test_version_matches_metadata() -> None:
    """__version__ comes from the installed package metadata."""
    assert version("streambridge") == streambridge.__version__


def test_py_typed_is_shipped() -> None:
    """The package carries the PEP 561 marker."""
    assert (Path(streambridge.__file__).parent / "py.typed").is_file()


def test_one_exception_root() -> None:
    """Every exported exception derives from StreambridgeError."""
    errors = [getattr(streambridge, n) for n in streambridge.__all__ if n.endswith("Error")]
    assert errors
    assert all(issubclass(e, streambridge.StreambridgeError) for e in errors)
    assert issubclass(streambridge.ConfigurationError, ValueError)
    assert issubclass(streambridge.AccessDeniedError, PermissionError)


def test_core_imports_no_boto3_and_package_no_moto() -> None:
    """The pure core never imports boto3/botocore; `import streambridge` never imports moto."""
    code = (
        "import sys\n"
        "import streambridge.forwarder.filtering, streambridge.forwarder.exclusion, "
        "streambridge.forwarder.encoding, streambridge.forwarder.framing, streambridge.retry, "
        "streambridge.importer.keys, streambridge.importer.events, "
        "streambridge.importer.checkpoints, streambridge.forwarder.settings, "
        "streambridge.importer.settings, streambridge.forwarder.results, "
        "streambridge.importer.results, streambridge.importer.decoding\n"
        "assert not [m for m in sys.modules if m.startswith(('boto3', 'botocore'))], 'core imported boto'\n"
        "import streambridge\n"
        "streambridge.FirehoseForwarder, streambridge.KinesisImporter\n"
        "assert 'moto' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603


def test_pytest_plugin_is_registered() -> None:
    """Installing streambridge registers its fixtures as the `streambridge` pytest plugin."""
    from importlib.metadata import entry_points  # noqa: PLC0415

    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "streambridge"]
    module = plugin.load()
    assert {"streambridge_aws", "streambridge_aws_server"} <= set(vars(module))
