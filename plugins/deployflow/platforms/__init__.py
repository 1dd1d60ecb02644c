"""Platforms: where versions run (a Docker host's containers, Kubernetes)."""
