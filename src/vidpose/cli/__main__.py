"""``python -m vidpose.cli``: the same as the ``vidpose`` command."""

import sys

from vidpose.cli import main

sys.exit(main())
