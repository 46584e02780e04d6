"""``python -m dogesim.cli``: the ``dogesim`` command."""

from __future__ import annotations

import sys

from dogesim.cli import main

sys.exit(main())
