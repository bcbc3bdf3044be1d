"""``python -m mse_helpers.cli`` runs the ``mse`` command (useful where the console script is not on PATH)."""

import sys

from . import main

sys.exit(main())
