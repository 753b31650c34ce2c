"""``python -m provision``: the same as the ``kafkaratchet-provision`` console script."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
