"""Grafana for the node and Serve: :mod:`~ops.grafana.dashboards` builds the dashboards in code
(the JSON in ``dashboards/`` is its checked-in output), ``provisioning/`` points Grafana at the
Prometheus datasource and the dashboards, ``compose.yaml`` runs Prometheus + Grafana."""

__all__: list[str] = []
