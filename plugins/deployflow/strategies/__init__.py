"""Strategies: plans of traffic steps over a platform and a router."""
