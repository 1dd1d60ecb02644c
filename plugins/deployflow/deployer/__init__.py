"""The deployer: the step-by-step release that runs inside the deploy container."""
