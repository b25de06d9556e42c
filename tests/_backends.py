"""The LIF backends the tests run; the native one is skipped where there is no C compiler."""

import pytest

import snn

needs_cc = pytest.mark.skipif(
    snn.kernels.native._compiler() is None, reason="the native LIF kernel needs a C compiler"
)
NATIVE = pytest.param("native", marks=needs_cc)
FUSED_EXECUTORS = [NATIVE, "eager"]  # the fused node's executors that run anywhere on CPU
ALL_BACKENDS = [NATIVE, "eager", "reference"]
