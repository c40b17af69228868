"""CloudWatch Embedded Metric Format lines: what each Lambda invocation did, on stdout.

Both Lambda handlers print one line per invocation (per stream, which is one for an event
source mapping), on by default: CloudWatch Logs turns it into metrics, with no API call and
no extra latency. The shape is Powertools for AWS Lambda's
(:func:`~streambridge.metrics.emf_document`), so dashboards built on it work;
``STREAMBRIDGE_METRICS=off`` turns the lines off.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping

from streambridge.errors import ConfigurationError
from streambridge.metrics import MetricsSnapshot, emf_document

__all__ = ["VARIABLES", "EmfWriter"]

#: The environment variables read here, and what each is for.
VARIABLES = {
    "STREAMBRIDGE_METRICS": "'off': no CloudWatch EMF metrics line per invocation "
    "('on', the default, prints one on stdout)",
    "STREAMBRIDGE_METRICS_NAMESPACE": "the CloudWatch namespace of those metrics (default: "
    "POWERTOOLS_METRICS_NAMESPACE when set, else 'streambridge')",
}

DEFAULT_NAMESPACE = "streambridge"


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class EmfWriter:
    """Prints what an invocation added to the metrics as EMF documents, one line each."""

    def __init__(
        self,
        half: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        service: str = DEFAULT_NAMESPACE,
        write: Callable[[str], object] = _stdout,
    ) -> None:
        """A writer of ``half``'s measurements (``importer`` or ``forwarder``)."""
        self.half = half
        self.namespace = namespace
        self.service = service
        self._write = write

    @classmethod
    def from_environment(
        cls, half: str, environ: Mapping[str, str] | None = None
    ) -> EmfWriter | None:
        """The writer the environment asks for (:data:`VARIABLES`); None when turned off.

        The namespace is ``STREAMBRIDGE_METRICS_NAMESPACE``, else Powertools'
        ``POWERTOOLS_METRICS_NAMESPACE``; the ``service`` dimension Powertools'
        ``POWERTOOLS_SERVICE_NAME``; each ``streambridge`` when unset.

        Raises:
            ConfigurationError: ``STREAMBRIDGE_METRICS`` is neither on nor off.
        """
        env = os.environ if environ is None else environ
        switch = env.get("STREAMBRIDGE_METRICS", "on").strip().lower()
        if switch not in ("on", "off", "true", "false", "1", "0", ""):
            msg = f"STREAMBRIDGE_METRICS must be 'on' or 'off', got {switch!r}"
            raise ConfigurationError(msg)
        if switch in ("off", "false", "0"):
            return None
        namespace = (
            env.get("STREAMBRIDGE_METRICS_NAMESPACE", "").strip()
            or env.get("POWERTOOLS_METRICS_NAMESPACE", "").strip()
            or DEFAULT_NAMESPACE
        )
        service = env.get("POWERTOOLS_SERVICE_NAME", "").strip() or DEFAULT_NAMESPACE
        return cls(half, namespace=namespace, service=service)

    def write(self, added: MetricsSnapshot, stream: str) -> None:
        """One line: what ``added`` holds for ``stream``."""
        document = emf_document(
            added, half=self.half, stream=stream, namespace=self.namespace, service=self.service
        )
        self._write(json.dumps(document, separators=(",", ":")))
