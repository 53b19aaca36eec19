"""Model artifacts: the pickle-free bundle, its stores and the versioned registry.

:mod:`~training.artifacts.bundle` (the bundle, its byte format; numpy only — Serve replicas and
the node import it), :mod:`~training.artifacts.histograms` (drift reference distributions),
:mod:`~training.artifacts.store` (local directory / ``pyarrow.fs`` stores),
:mod:`~training.artifacts.registry` (versions, aliases, promote/rollback, audit log) and
:mod:`~training.artifacts.errors`. Import from the modules: this package stays light.
"""

__all__ = ["bundle", "errors", "histograms", "registry", "store"]
