"""The deployer: the step-by-step release that runs inside the deploy container."""

# The deployer's own verdicts, its exit codes (any other: it was killed, evicted, lost; the task may be retried).
FAILED, BAD_INPUT, FENCED = 1, 2, 3
# It crashed on an error it has no verdict for (the engine's or the cluster's API, say): its reason is in its result
# and its last ERROR line, and the task may be retried (every step picks up from the release record).
CRASHED = 4
