"""Operations: acceptance checks on a RUN_DIR (:mod:`~ops.acceptance`), the HTML report, the
person's side of the kill switch, the ``nhmm`` commands for them (:mod:`~ops.cli`) and the demo.

Import the modules themselves: the package exports nothing, so importing one stays light.
"""

__all__: list[str] = []
