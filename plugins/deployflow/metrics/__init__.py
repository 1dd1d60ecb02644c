"""Metrics providers: where canary analysis reads its series (Prometheus)."""
