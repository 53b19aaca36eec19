"""Serving: the in-process model, the Ray Serve application, drift monitoring and clients.

:mod:`~serving.model` (one inference step; what Serve and the node both run),
:mod:`~serving.client` (the ``ModelClient`` the strategy holds: HTTP or in-process),
:mod:`~serving.app` (``AppArgs``, ``build_app``) and :mod:`~serving.deployments` (ingress,
drift server, partial-fit server), :mod:`~serving.errors` (error kind → HTTP status),
:mod:`~serving.drift`, :mod:`~serving.adapt`, :mod:`~serving.schemas`, :mod:`~serving.metrics`,
:mod:`~serving.testing`. Import from the modules: the node imports the client without Ray Serve.
"""

__all__ = [
    "adapt",
    "app",
    "client",
    "deployments",
    "drift",
    "errors",
    "metrics",
    "model",
    "schemas",
    "testing",
]
