"""The pipeline's stages before the deploy: check out a ref, build and push its image, run its test suites."""
