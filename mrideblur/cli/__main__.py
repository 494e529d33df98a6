"""``python -m mrideblur.cli``: the ``mrideblur`` command."""

import sys

from .app import main

sys.exit(main())
