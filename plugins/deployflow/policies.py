"""Words the catalog, the judge and governance share, defined once: the environments a release goes through,
how a metric may regress, and what no data means.

A module of its own (no numpy, no scipy): the catalog is read at every DAG file import and by the deployer,
whose image carries neither.
"""

from __future__ import annotations

DIRECTIONS = ("increase", "decrease", "either")  # which way a metric gets worse
NODATA_POLICIES = ("fail", "pass", "extend")  # a metric with no data: fails, passes, or waits for more
# The watch after promotion with no data: fails at once, passes, or holds the old version standing by and fails
# back to it if no interval of the watch had data (the default: silence never promotes).
WATCH_NODATA_POLICIES = ("fail", "pass", "hold")
ENVIRONMENTS = ("dev", "staging", "prod")  # in the order a release is promoted through them
