"""``python -m lagllama.cli``: the ``lagllama`` command."""

import sys

from lagllama.cli import main

sys.exit(main())
