"""Estimators: recover the image and the unknown physics parameters from data.

- :mod:`.base`: what every estimator shares — :class:`~.base.Result`, the
  :class:`~.base.Cancelled` exception, the progress-callback type and the options base;
- :mod:`.catalogue`: the one list of methods that :func:`mrideblur.mri.correct`,
  :func:`mrideblur.deblur.deconvolve`, :func:`mrideblur.deblur.blind_deconvolve`, the CLI,
  the batch runner and the napari widgets read;
- one module per method: :mod:`.nonblind`, :mod:`.blind_vb`, :mod:`.blind_diffusion`,
  :mod:`.sense`, :mod:`.aligned_sense`, :mod:`.jsmoco`, :mod:`.autofocus`,
  :mod:`.autofocus_magnitude`, :mod:`.autofocus_step`.

Submodules are imported on demand, so that ``import mrideblur.estimators`` stays cheap.
"""
