"""``python -m streambridge``: the same as the ``streambridge`` command."""

from __future__ import annotations

import sys

from streambridge.cli import main

if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess test
    sys.exit(main())
