"""The Nautilus node: the strategy (:mod:`~node.strategy`) and its config, guardrails, persisted
kill switch, execution rules, feature actor and shadow policy; the backtest runner and its
``nhmm backtest`` command; the RUN_DIR contract (:mod:`~node.run_dir`) that ops reads.

Import the modules themselves: the package exports nothing, so importing one stays light.
"""

__all__: list[str] = []
