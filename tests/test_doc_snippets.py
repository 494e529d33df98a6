"""Every ```python block of README.md and docs/*.md runs as written.

The blocks of one page run in order in one namespace (a block may use what an earlier block of
the same page defined, as a reader pasting them one after the other would), in a temporary
working directory of their own, on one torch thread.  Each block is one test, ``README.md#1``,
``docs/mri.md#2``, ...  A block not meant to run (pseudo-code, an output listing) is fenced
```text instead, or has ``<!-- not-run -->`` on the line just before its fence.

Files a reader would already have (``photo.png``, ``study.nii.gz``, ``case.h5``) are made from
built-in data in the temporary directory when a block names one it does not write itself
(:data:`INPUTS`).  Blocks slower than about 20 s on one thread are in :data:`SLOW`: marked
``slow``, deselected by default and run by ``bash tests/run.sh`` (the measured times are there).
"""

from __future__ import annotations

import ast
import builtins
import symtable
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from doc_snippets import ROOT, Block, doc_files, python_blocks, run_block

# Seconds on one thread of the 2-core development machine, with other jobs on its second core
# (pytest tests/test_doc_snippets.py -m "slow or not slow" --durations=0).  Every other block
# takes under 10 s, except docs/conventions.md#8 (12-21 s).
SLOW: dict[str, float] = {
    "README.md#1": 37,            # blind VB, 192x192 crop + aligned-SENSE, 64x64 slice (31-56 s)
    "docs/conventions.md#7": 20,  # aligned-SENSE, 96x96, 16 shots (19-32 s)
    "docs/deblurring.md#1": 56,   # blind VB, the 512x512 photograph, 25x25 kernel (47-78 s)
    "docs/mri.md#2": 54,          # aligned-SENSE, 192x192, 16 shots, joint coils (54-60 s)
    "docs/mri.md#3": 29,          # JSMoCo, 96x96, 4 posterior samples (29-38 s)
}


# ----------------------------------------------------------------------------- reader's files
def _photo_png(path: Path) -> None:
    """A camera-shaken 128x128 crop of scikit-image's camera photograph."""
    from skimage import data

    from mrideblur.deblur import blur, camera_shake_kernel
    from mrideblur.io import write_image

    x = data.camera()[192:320, 192:320] / 255.0
    write_image(path, np.clip(blur(x, camera_shake_kernel(11, seed=3), noise_sigma=0.01, seed=0), 0, 1))


def _study_nii(path: Path) -> None:
    """The MNI152 template at 4 mm (a small study), with its affine."""
    from mrideblur.io import write_nifti
    from mrideblur.io.anatomy import mni_volume

    vol, affine = mni_volume()                       # (z, y, x); the affine is for (x, y, z)
    data = vol.transpose(2, 1, 0)[:, ::-1, :][::4, ::4, ::4]   # back to the file's voxel order
    affine = affine.copy()
    affine[:3, :3] *= 4
    write_nifti(path, np.ascontiguousarray(data), affine)


def _case_h5(path: Path) -> None:
    """A simulated 64x64, 4-coil, 8-shot motion-corrupted case."""
    from mrideblur.io.anatomy import mni_slice
    from mrideblur.io.case import write_case
    from mrideblur.mri import simulate

    write_case(path, simulate(mni_slice("axial", 0.55, 64), ncoil=4, nshot=8, seed=0))


#: file name -> maker, for the files a reader is assumed to have.
INPUTS: dict[str, Callable[[Path], None]] = {
    "photo.png": _photo_png,
    "study.nii.gz": _study_nii,
    "case.h5": _case_h5,
}


def _written_by(code: str) -> set[str]:
    """String literals a block passes first to a ``write*``/``save*`` call: files it makes."""
    out = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name.startswith(("write", "save", "savefig", "imsave")) and isinstance(node.args[0].value, str):
                out.add(node.args[0].value)
    return out


def _inputs_of(block: Block) -> list[str]:
    literals = {n.value for n in ast.walk(ast.parse(block.code))
                if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return [name for name in INPUTS if name in literals and name not in _written_by(block.code)]


def _free_names(code: str) -> set[str]:
    """Names a block reads but neither defines nor gets from builtins (it needs an earlier block)."""
    free: set[str] = set()

    def visit(table: symtable.SymbolTable, top: bool) -> None:
        for sym in table.get_symbols():
            if top:
                if sym.is_referenced() and not (sym.is_assigned() or sym.is_imported()):
                    free.add(sym.get_name())
            elif sym.is_global() and sym.is_referenced():
                free.add(sym.get_name())
        for child in table.get_children():
            visit(child, False)

    top = symtable.symtable(code, "<block>", "exec")
    visit(top, True)
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    return {n for n in free - defined if not hasattr(builtins, n)}


# ----------------------------------------------------------------------------- the tests
BLOCKS = [b for path in doc_files() for b in python_blocks(path)]


class _Page:
    """One page's namespace, working directory and the blocks already run in it."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.namespace: dict = {"__name__": "__main__"}
        self.done: set[int] = set()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Callable[[Block], _Page]:
    cache: dict[Path, _Page] = {}

    def get(block: Block) -> _Page:
        if block.path not in cache:
            cache[block.path] = _Page(tmp_path_factory.mktemp(block.path.stem))
        return cache[block.path]

    return get


@pytest.fixture
def one_thread(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield
    torch.set_num_threads(before)


def _run(block: Block, page: _Page) -> None:
    for name in _inputs_of(block):
        if not (page.workdir / name).exists():
            INPUTS[name](page.workdir / name)
    run_block(block, page.namespace)
    page.done.add(block.index)


def _param(block: Block):
    marks = [pytest.mark.slow] if block.id in SLOW else []
    marks += [pytest.mark.skip(reason="<!-- not-run -->")] if not block.run else []
    return pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_block_runs(block: Block, pages, one_thread, monkeypatch):
    page = pages(block)
    monkeypatch.chdir(page.workdir)
    if _free_names(block.code):
        # it builds on earlier blocks of its page: run those not run yet (deselected, or this test
        # chosen alone), as the reader would have
        for earlier in python_blocks(block.path)[: block.index - 1]:
            if earlier.run and earlier.index not in page.done:
                _run(earlier, page)
    _run(block, page)


def test_every_page_is_collected():
    assert (ROOT / "README.md") in doc_files()
    assert any(b.path.name == "README.md" and b.run for b in BLOCKS), "README.md: no ```python block to run"


def test_slow_list_names_real_blocks():
    assert set(SLOW) <= {b.id for b in BLOCKS}, set(SLOW) - {b.id for b in BLOCKS}


def test_not_run_marker_is_honoured(tmp_path):
    md = tmp_path / "page.md"
    md.write_text("text\n\n<!-- not-run -->\n```python\nundefined_name\n```\n\n```python\nz = 1\n```\n"
                  "```text\n```python\n```\n")
    first, second = python_blocks(md)
    assert (first.run, second.run) == (False, True)
    assert second.code == "z = 1\n" and len(python_blocks(md)) == 2


def test_a_failing_block_fails(tmp_path):
    md = tmp_path / "page.md"
    md.write_text("```python\nx = 1\n```\n\n```python\nprint(x + y)\n```\n")
    first, second = python_blocks(md)
    ns: dict = {}
    run_block(first, ns)
    assert _free_names(second.code) == {"x", "y"} and _free_names(first.code) == set()
    with pytest.raises(NameError) as err:
        run_block(second, ns)
    frames = traceback.extract_tb(err.value.__traceback__)
    assert any(f.filename == str(md) and f.lineno == 6 for f in frames)    # points at the page


def test_reader_inputs_are_made_only_when_read(tmp_path):
    from mrideblur.io import read_case, read_image, read_nifti

    reads = Block(tmp_path / "p.md", 1, 1, 'img = read_image("photo.png")\ncase = load_case("case.h5")\n', True)
    writes = Block(tmp_path / "p.md", 2, 1, 'write_case("case.h5", case)\nread_case("case.h5")\n', True)
    assert _inputs_of(reads) == ["photo.png", "case.h5"] and _inputs_of(writes) == []
    for name, make in INPUTS.items():
        make(tmp_path / name)
    assert read_image(tmp_path / "photo.png").shape == (128, 128)
    assert read_nifti(tmp_path / "study.nii.gz")[0].ndim == 3
    assert read_case(tmp_path / "case.h5").kspace.shape == (4, 64, 64)
