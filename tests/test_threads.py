from __future__ import annotations

import numpy as np
import pytest
import torch

from mrideblur.physics import fourier
from mrideblur.threads import set_threads, threads_from_env


def test_set_threads_reaches_torch_and_scipy_fft(monkeypatch):
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1 and fourier.FFT_WORKERS == 1
        x = np.random.default_rng(0).normal(size=(8, 8)).astype(np.complex64)
        np.testing.assert_allclose(fourier.ifft(fourier.fft(x)), x, atol=1e-5)
        set_threads(None)
        assert fourier.FFT_WORKERS == -1
    finally:
        torch.set_num_threads(before)
        fourier.FFT_WORKERS = -1
    with pytest.raises(ValueError, match="threads"):
        set_threads(0)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads_from_env() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "x")
    assert threads_from_env() is None
