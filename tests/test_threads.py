"""Thread policy (mrideblur.threads): one thread unless asked; entry points run under it and
restore torch's own setting; the CLI option and the environment variable reach the library."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft as sfft
import torch

from mrideblur import threads
from mrideblur.threads import ENV_VAR, get_threads, set_threads, using_threads


@pytest.fixture(autouse=True)
def _forget_choice(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    set_threads(None)
    yield
    set_threads(None)


def test_default_is_one_thread_and_env_and_set_threads_override(monkeypatch):
    assert get_threads() == 1
    monkeypatch.setenv(ENV_VAR, "3")
    assert get_threads() == 3
    monkeypatch.setenv(ENV_VAR, "all")
    assert get_threads() == threads.available_cores()
    set_threads(2)  # an explicit choice beats the environment
    assert get_threads() == 2
    monkeypatch.setenv(ENV_VAR, "lots")
    set_threads(None)
    with pytest.raises(ValueError, match=ENV_VAR):
        get_threads()
    for bad in (0, -1, 1.5, "x", True):
        with pytest.raises(ValueError, match="threads"):
            set_threads(bad)


def test_using_threads_sets_torch_scipy_blas_and_restores_torch():
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with using_threads(target) as k:
        assert k == target and torch.get_num_threads() == target
        assert sfft.get_workers() == target
        assert all(lib["num_threads"] == target for lib in threadpool_info() if lib["user_api"] == "blas")
        x = np.random.default_rng(0).normal(size=(8, 8)).astype(np.complex64)
        from mrideblur.physics import fourier

        np.testing.assert_allclose(fourier.ifft(fourier.fft(x)), x, atol=1e-5)
    assert torch.get_num_threads() == before


def test_entry_points_run_with_the_chosen_threads(monkeypatch):
    """correct() sees the configured count inside, whatever torch had before, and restores it."""
    from mrideblur.estimators import api

    seen = []
    real = api.find

    def spy(problem, name):
        seen.append((torch.get_num_threads(), sfft.get_workers()))
        return real(problem, name)

    monkeypatch.setattr(api, "find", spy)
    before = torch.get_num_threads()
    y = np.random.default_rng(0).normal(size=(16, 16))
    k = np.ones((3, 3)) / 9
    set_threads(1)
    api.deconvolve(y, k, "wiener")
    set_threads(2)
    api.deconvolve(y, k, "wiener")
    assert seen == [(1, 1), (2, 2)]
    assert torch.get_num_threads() == before


def test_cli_threads_option_reaches_the_library(monkeypatch, capsys):
    from mrideblur.cli import app

    got = {}

    def fake(args):
        got["threads"] = get_threads()
        return 0

    parser = app.build_parser()
    args = parser.parse_args(["demo", "--threads", "2"])
    assert args.threads == 2
    monkeypatch.setattr(app, "build_parser", lambda: _with_func(parser, fake))
    assert app.main(["demo", "--threads", "2"]) == 0 and got["threads"] == 2
    assert app.main(["demo"]) == 0 and got["threads"] == 1
    assert app.main(["demo", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def _with_func(parser, func):
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(func=func)
    return parser
