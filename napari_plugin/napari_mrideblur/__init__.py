"""napari plugin for mrideblur: a shell around :mod:`mrideblur`, no algorithms of its own.

Contributions (``napari.yaml``):

- reader: mrideblur case ``.h5``, fastMRI and ISMRMRD files (uncorrected coil-combined image,
  k-space log-magnitude, truth when the case has one) and NIfTI volumes (layer scale and
  translation in millimetres from the affine);
- writer: image layers to NIfTI, keeping the affine of the source file;
- sample: a simulated motion-corrupted scan of the built-in MNI152 anatomy, with its truth;
- widgets: motion correction (:class:`~napari_mrideblur._correct_widget.CorrectionWidget`) and
  image deblurring (:class:`~napari_mrideblur._deblur_widget.DeblurWidget`).

The modules are imported lazily by npe2; importing this package does not import Qt.
"""

__version__ = "0.1.0"
