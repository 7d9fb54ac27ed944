"""``python -m pitwall.crds``: write crds/*.yaml from the API models (``make crds`` runs this).

The schemas are declared once, as pydantic models in :mod:`pitwall.api`; the generator is
:mod:`pitwall.api.crdgen`. This module stays as the entry point scripts and docs name.
"""

from __future__ import annotations

import sys

from .api.crdgen import build_all, files, main

__all__ = ["build_all", "files", "main"]

if __name__ == "__main__":
    sys.exit(main())
