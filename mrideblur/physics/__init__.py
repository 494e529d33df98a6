"""Physics: the forward models ``y = A(phi) x + n`` and their unknown parameters ``phi``.

Image blur (``y = k * x + n``) and multi-shot, multi-coil MRI with rigid motion
(``y_s = M_s F S T(theta_s) x + n``) are written here once, with no estimator in sight:

- :mod:`.fourier`: the centred orthonormal FFT of docs/conventions.md (numpy and torch), the one
  FFT of the package;
- :mod:`.kernels`, :mod:`.blur`: blur kernels and the blur operator;
- :mod:`.motion`, :mod:`.motion_torch`: rigid motion ``T(theta)`` by Fourier shears, 2D and 3D;
- :mod:`.shots`: shot maps (which phase-encode lines each shot acquired);
- :mod:`.coils`: coil maps (ESPIRiT/JSENSE calibration, simulated arrays, a polynomial model);
- :mod:`.multishot`, :mod:`.multishot_torch`: the whole MRI model as a sigpy ``Linop`` and its
  differentiable torch twin;
- :mod:`.operators`: linear operators on torch tensors for the samplers (convolution, masked
  Fourier), all with ``A``, ``A_adjoint`` and ``update_parameters``;
- :mod:`.cg`: the one conjugate-gradient solver (numpy arrays and torch tensors, optionally
  batched and preconditioned, differentiable);
- :mod:`.simulate`, :mod:`.simulate_simple`: motion-corrupted cases from any image or volume.

Submodules are imported on demand (``from mrideblur.physics.motion import rigid2d``), so that
``import mrideblur.physics`` stays cheap.
"""
