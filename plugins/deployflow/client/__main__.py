"""``python -m deployflow.client``: see cli.py."""

import sys

from deployflow.client.cli import main

sys.exit(main())
