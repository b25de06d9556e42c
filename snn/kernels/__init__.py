"""The executors behind :func:`snn.functional.lif_sequence`'s fused node.

* :mod:`snn.kernels.fused`: the fused multi-step node (one autograd node for the whole time loop)
  and its PyTorch (eager) executor;
* :mod:`snn.kernels.native`: its plain-C executor (``csrc/``), built on first use and cached,
  which also runs the feed-forward CubaLIF and ALIF (the LIF's step with a current or a
  threshold state switched on at compile time);
* :mod:`snn.kernels.family`: the fused nodes of CubaLIF, ALIF and the recurrent layer, and which
  executor each neuron gets, and why (its docstring): on CPU the LIF, CubaLIF and ALIF run the
  native kernel; a recurrent layer (its matmul inside the time loop) and whatever the kernel
  cannot run (bf16, a user's surrogate, no C compiler) run PyTorch operations;
* :mod:`snn.kernels.triton_lif`, :mod:`snn.kernels.triton_family`,
  :mod:`snn.kernels.triton_recurrent`: the Triton (GPU) executors of the LIF, of CubaLIF and
  ALIF, and of the recurrent layer (one step body for all).

Nothing here is public API: call :func:`snn.functional.lif_sequence` or use :class:`snn.LIF`.
"""
