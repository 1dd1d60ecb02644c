"""The analysis of a release: its guards, the judging of canary against baseline (and of a promoted version
against the old one), where an analysis stands, and the load that gives it traffic."""
