"""The ISMRMRD XML header, read with the ``ismrmrd`` package's schema model.

Used by :mod:`mrideblur.io.ismrmrd_io` (``/dataset/xml``) and :mod:`mrideblur.io.fastmri`
(``ismrmrd_header``). :func:`parse_ismrmrd_header` reads the document with
:func:`ismrmrd.xsd.CreateFromDocument` and keeps what the readers use: the first
``<encoding>`` (matrix sizes, fields of view, encoding limits, trajectory).
"""

from __future__ import annotations

import dataclasses
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ISMRMRD_NAMESPACE", "IsmrmrdHeader", "import_ismrmrd", "parse_ismrmrd_header"]

#: Namespace of ISMRMRD XML headers.
ISMRMRD_NAMESPACE = "http://www.ismrm.org/ISMRMRD"


def import_ismrmrd() -> Any:
    """The ``ismrmrd`` package, imported on first use (``import mrideblur.io`` stays fast).

    Raises
    ------
    ImportError
        The package is not installed; the message says how to install it.
    """
    try:
        import ismrmrd
        import ismrmrd.file
        import ismrmrd.hdf5
        import ismrmrd.xsd
    except ImportError as exc:
        raise ImportError(
            f"reading ISMRMRD data needs the 'ismrmrd' package ({exc}); install it with: pip install ismrmrd"
        ) from exc
    return ismrmrd


@dataclass
class IsmrmrdHeader:
    """What the readers use from an ISMRMRD XML header (its first ``<encoding>``).

    Attributes
    ----------
    encoded_matrix, recon_matrix : (x, y, z) ints
        ``encodedSpace`` and ``reconSpace`` matrix sizes.
    encoded_fov_mm, recon_fov_mm : (x, y, z) floats
        Fields of view in millimetres (0 when absent).
    limits : dict of str -> (minimum, maximum, center)
        ``encodingLimits`` entries present (``"kspace_encoding_step_1"``, ``"slice"``, ...).
    trajectory : str
        ``"cartesian"``, ``"radial"``, ... (``""`` when absent).
    n_encodings : int
        Number of ``<encoding>`` elements (only the first is used).
    """

    encoded_matrix: tuple[int, int, int]
    recon_matrix: tuple[int, int, int]
    encoded_fov_mm: tuple[float, float, float]
    recon_fov_mm: tuple[float, float, float]
    limits: dict[str, tuple[int, int, int]]
    trajectory: str
    n_encodings: int


def _with_namespace(text: str, where: str) -> str:
    """The document with every element in the ISMRMRD namespace (added where it is missing).

    Hand-written on purpose: the package's schema model matches namespaced elements only, and
    it would silently find no ``<encoding>`` in a header written without the namespace (as
    some converters do).
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"{where}: expected an ISMRMRD XML header, could not parse it ({exc})") from None
    if root.tag.rsplit("}", 1)[-1] != "ismrmrdHeader":
        raise ValueError(f"{where}: expected an ISMRMRD XML header (root <ismrmrdHeader>), got <{root.tag}>")
    if root.tag.startswith("{"):
        return text
    for elem in root.iter():
        if isinstance(elem.tag, str) and not elem.tag.startswith("{"):
            elem.tag = f"{{{ISMRMRD_NAMESPACE}}}{elem.tag}"
    return ET.tostring(root, encoding="unicode")


def _lenient_parse(text: str, where: str) -> Any:
    """Parse with the package's schema model, tolerating missing and unknown elements.

    Hand-written on purpose: :func:`ismrmrd.xsd.CreateFromDocument` rejects any header that
    lacks an element the schema requires (``<experimentalConditions>``, ``<encodingLimits>``,
    ...) or holds one it does not know (vendor extensions, other schema versions), although
    the readers need only the ``<encoding>``; such headers are read with the same model, the
    missing elements set to ``None`` and checked below where they matter.
    """
    from ismrmrd.xsd import ismrmrdHeader
    from xsdata.formats.dataclass.parsers import XmlParser
    from xsdata.formats.dataclass.parsers.config import ParserConfig

    def factory(cls: type, params: dict[str, Any]) -> Any:
        for f in dataclasses.fields(cls):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if f.init and required and f.name not in params:
                params[f.name] = None
        return cls(**params)

    config = ParserConfig(fail_on_unknown_properties=False, fail_on_converter_warnings=True, class_factory=factory)
    try:
        return XmlParser(config=config).from_string(text, ismrmrdHeader)
    except Exception as exc:  # noqa: BLE001 - xsdata raises several types for bad values
        detail = " ".join(str(exc).split())
        raise ValueError(f"{where}: expected an ISMRMRD XML header, could not read it ({detail})") from None


def parse_ismrmrd_header(xml: str | bytes, where: str = "header") -> IsmrmrdHeader:
    """Parse the parts of an ISMRMRD XML header that the readers need.

    Parameters
    ----------
    xml : str or bytes
        The header document (namespace ``http://www.ismrm.org/ISMRMRD`` or none). A NumPy
        array (as read from an HDF5 dataset) is taken by its first element.
    where : str
        Prefix of error messages (file and dataset name).

    Returns
    -------
    IsmrmrdHeader
        Matrix sizes missing an axis take the schema default 1.

    Raises
    ------
    ImportError
        The ``ismrmrd`` package is not installed.
    ValueError
        Not XML, not an ``<ismrmrdHeader>``, a value of the wrong type (a non-numeric matrix
        size, an unknown trajectory, ...), no ``<encoding>``, or no ``encodedSpace`` matrix size.
    """
    import_ismrmrd()
    from ismrmrd.xsd import CreateFromDocument

    if isinstance(xml, np.ndarray):
        xml = xml.ravel()[0]
    if isinstance(xml, bytes):
        xml = xml.decode("utf-8", errors="replace")
    text = _with_namespace(str(xml).strip(), where)
    try:
        with warnings.catch_warnings():  # a bad value is reported once, by the lenient parse
            warnings.simplefilter("ignore")
            doc = CreateFromDocument(text)  # the package's reader: a complete, schema-valid header
    except Exception:  # noqa: BLE001 - an incomplete header: read what is there, check below
        doc = _lenient_parse(text, where)
    encodings = list(doc.encoding or [])
    if not encodings:
        raise ValueError(f"{where}: expected an ISMRMRD XML header with an <encoding> element, found none")
    enc = encodings[0]
    encoded = enc.encodedSpace
    if encoded is None or encoded.matrixSize is None:
        raise ValueError(f"{where}: expected <encoding><encodedSpace><matrixSize> in the XML header, found none")
    recon = enc.reconSpace if enc.reconSpace is not None and enc.reconSpace.matrixSize is not None else encoded

    def matrix(space: Any) -> tuple[int, int, int]:
        m = space.matrixSize
        return (int(m.x), int(m.y), int(m.z))

    def fov(space: Any) -> tuple[float, float, float]:
        f = space.fieldOfView_mm
        if f is None:
            return (0.0, 0.0, 0.0)
        return tuple(float(v) if v is not None else 0.0 for v in (f.x, f.y, f.z))  # type: ignore[return-value]

    limits: dict[str, tuple[int, int, int]] = {}
    if enc.encodingLimits is not None:
        for f in dataclasses.fields(enc.encodingLimits):
            lim = getattr(enc.encodingLimits, f.name)
            if lim is not None:
                limits[f.name] = (int(lim.minimum or 0), int(lim.maximum or 0), int(lim.center or 0))
    traj = enc.trajectory
    return IsmrmrdHeader(
        encoded_matrix=matrix(encoded),
        recon_matrix=matrix(recon),
        encoded_fov_mm=fov(encoded),
        recon_fov_mm=fov(recon),
        limits=limits,
        trajectory=str(getattr(traj, "value", traj) or ""),
        n_encodings=len(encodings),
    )
