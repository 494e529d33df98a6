"""The fixed benchmark images: grey photographs bundled with scikit-image, intensities in [0, 1].

None of them is among the five photographs the gradient prior was fitted on
(``data_scripts/fit_gradient_prior.py``: chelsea, coffee, rocket, clock, brick).
"""

from __future__ import annotations

import numpy as np
import skimage.transform

from mrideblur.io.anatomy import photo

BENCHMARK_IMAGES = ("camera", "astronaut", "moon", "coins")


def benchmark_images(size: int) -> dict[str, np.ndarray]:
    """Central ``size x size`` crops (resized first when an image is smaller), float64 in [0, 1]."""
    out = {}
    for name in BENCHMARK_IMAGES:
        a = photo(name)
        if min(a.shape) < size:
            a = skimage.transform.rescale(a, size / min(a.shape), anti_aliasing=True)
        y0 = (a.shape[0] - size) // 2
        x0 = (a.shape[1] - size) // 2
        out[name] = a[y0 : y0 + size, x0 : x0 + size]
    return out
