"""Operations: acceptance checks on a RUN_DIR (:mod:`~ops.acceptance`), the HTML report, the
person's side of the kill switch, daily Parquet rollups (:mod:`~ops.rollup`), Prometheus config
and alert rules (:mod:`~ops.prometheus`), Grafana dashboards (:mod:`~ops.grafana`), the ``nhmm``
commands for them (:mod:`~ops.cli`), the runbook and the demo.

Import the modules themselves: the package exports nothing, so importing one stays light.
"""

__all__: list[str] = []
