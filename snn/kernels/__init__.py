"""The executors behind :func:`snn.functional.lif_sequence`'s fused node.

* :mod:`snn.kernels.fused`: the fused multi-step node (one autograd node for the whole time loop)
  and its PyTorch (eager) executor;
* :mod:`snn.kernels.native`: its plain-C executor (``csrc/``), built on first use and cached;
* :mod:`snn.kernels.family`: the fused nodes of CubaLIF, ALIF and the recurrent layer;
* :mod:`snn.kernels.triton_lif`, :mod:`snn.kernels.triton_alif`: the LIF's and the ALIF's
  Triton (GPU) executors.

Nothing here is public API: call :func:`snn.functional.lif_sequence` or use :class:`snn.LIF`.
"""
