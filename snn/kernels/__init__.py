"""The executors behind :func:`snn.functional.lif_sequence`'s fused node.

* :mod:`snn.kernels.fused`: the fused multi-step node (one autograd node for the whole time loop)
  and its PyTorch executors (eager and compiled);
* :mod:`snn.kernels.native`: its plain-C executor (``csrc/``), built on first use and cached.

Nothing here is public API: call :func:`snn.functional.lif_sequence` or use :class:`snn.LIF`.
"""
