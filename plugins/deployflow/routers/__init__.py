"""Routers: how traffic is split between versions (HAProxy on a Docker host)."""
