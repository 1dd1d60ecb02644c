"""The deployer: the step-by-step release that runs inside the deploy container."""

# The deployer's own verdicts, its exit codes (any other: it was killed, evicted, lost; the task may be retried).
FAILED, BAD_INPUT, FENCED = 1, 2, 3
