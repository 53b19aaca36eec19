"""Models: the Gaussian HMM, trade labels, the policy head and online EM.

:mod:`~training.models.hmm` (parameters, the causal forward filter — numpy/scipy only, Serve
replicas and the node import it — evaluation, and fitting with hmmlearn),
:mod:`~training.models.labels` (forward return net of costs), :mod:`~training.models.policy`
(XGBoost head on the filtered posterior and the features) and :mod:`~training.models.online`
(guarded ``partial_fit``). Import from the modules: this package stays light.
"""

__all__ = ["hmm", "labels", "online", "policy"]
