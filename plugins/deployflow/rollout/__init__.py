"""The one rollout engine: prepare, shift, promote, rollback and status of a release, for every
strategy on every platform, over the workload (platforms/), traffic (routers/) and release store
(stores/) interfaces."""
