"""Release stores: where the release record lives (a file beside the proxy's, a ConfigMap in the namespace)."""
