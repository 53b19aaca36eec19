"""Serving: the in-process model, the Ray Serve application, drift monitoring and clients."""
