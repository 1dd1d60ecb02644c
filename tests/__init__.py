"""The test harness. Its catalogs build from scratch repositories and name the test stacks' connections:
tests/grants.yaml grants them, for pytest and for the scripts that use the harness (a grants file the
caller set wins)."""

import os
from pathlib import Path

os.environ.setdefault("DEPLOYFLOW_GRANTS", str(Path(__file__).with_name("grants.yaml")))
