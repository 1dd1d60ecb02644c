"""``make test``: every test, in three pytest processes side by side (tests/runner.py says which and how).

    python scripts/run_tests.py [pytest arguments for all of them, e.g. -x]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "plugins")]  # tests, deployflow

from tests.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
