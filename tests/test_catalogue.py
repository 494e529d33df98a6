"""The catalogue is the one list of estimators: every entry runs, options are checked, and the
public entry points, the template and the shells all go through it."""

import dataclasses

import numpy as np
import pytest

from mrideblur.estimators import base, catalogue
from mrideblur.estimators.catalogue import CATALOGUE, PROBLEMS, Entry, find, methods


def test_every_entry_loads_with_an_options_dataclass_derived_from_the_base():
    assert len({(e.problem, e.name) for e in CATALOGUE}) == len(CATALOGUE)
    for e in CATALOGUE:
        assert e.problem in PROBLEMS
        assert e.family in ("point", "posterior", "profiled", "non-blind", "learned")
        cls = e.options_class()
        assert dataclasses.is_dataclass(cls) and issubclass(cls, base.Options), e.name
        assert callable(e.run_function()), e.name


def test_options_reject_unknown_names_and_bad_values_with_the_field_named():
    with pytest.raises(ValueError, match="nsr: method 'tikhonov' does not take"):
        find("deconvolve", "tikhonov").make_options(nsr=0.1)
    with pytest.raises(ValueError, match="steps: method 'vb' does not take this option \\(only 'diffusion'\\)"):
        find("blind-deconvolve", "vb").make_options(steps=4)
    with pytest.raises(ValueError, match="n_starts: expected an integer >= 1"):
        find("blind-deconvolve", "vb").make_options(n_starts=0)
    with pytest.raises(ValueError, match="coils: expected one of"):
        find("kspace", "aligned-sense").make_options(coils="magic")
    with pytest.raises(ValueError, match="method: expected one of \\('none', 'aligned-sense', 'jsmoco'\\)"):
        find("kspace", "sense")


def test_public_entry_points_run_the_catalogued_estimator():
    from mrideblur.deblur import BLIND_METHODS, METHODS, deconvolve
    from mrideblur.estimators import nonblind
    from mrideblur.mri import METHODS as MRI_METHODS

    assert METHODS == methods("deconvolve") and BLIND_METHODS == methods("blind-deconvolve")
    assert MRI_METHODS == methods("kspace")
    rng = np.random.default_rng(0)
    x = rng.random((32, 32))
    k = np.ones((3, 3)) / 9
    y = np.real(np.fft.ifft2(np.fft.fft2(x) * nonblind.psf2otf(k, x.shape)))
    a = deconvolve(y, k, "tikhonov", boundary="periodic", lam=1e-3)
    b = nonblind.run(y, k, nonblind.TikhonovOptions(boundary="periodic", lam=1e-3))
    np.testing.assert_array_equal(a, b)


def test_a_new_estimator_is_one_module_plus_one_catalogue_line(monkeypatch):
    """The contributor template, added by one Entry, is reachable from deconvolve() and improves
    on the blurred image (a number checked against the truth, not a shape)."""
    from mrideblur.deblur import deconvolve
    from mrideblur.physics.blur import blur
    from mrideblur.physics.kernels import gaussian_kernel

    line = Entry("deconvolve", "landweber", "Landweber iterations", "none", "early stopping", "non-blind",
                 "_template", "LandweberOptions")
    monkeypatch.setattr(catalogue, "CATALOGUE", CATALOGUE + (line,))
    assert "landweber" in methods("deconvolve")
    yy, xx = np.mgrid[:64, :64]
    x = ((yy - 32) ** 2 + (xx - 32) ** 2 < 15**2).astype(float) + 0.5 * (np.abs(xx - 20) < 4)
    k = gaussian_kernel(1.5)
    y = blur(x, k, boundary="periodic")
    est = deconvolve(y, k, "landweber", n_iter=200)
    assert np.linalg.norm(est - x) < 0.7 * np.linalg.norm(y - x)
    with pytest.raises(ValueError, match="step: expected a value in \\(0, 1\\)"):
        find("deconvolve", "landweber").make_options(step=3)


def test_cancel_hook_raises_the_one_cancel_exception():
    base.check_cancel(None)
    base.check_cancel(lambda: False)
    with pytest.raises(base.Cancelled):
        base.check_cancel(lambda: True)
