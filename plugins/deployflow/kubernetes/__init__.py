"""The kubernetes platform: Deployments, Services and HTTPRoutes, driven through the official client."""
