"""Regenerate the README's napari screenshot (docs/napari.png).

Opens the plugin's sample (File > Open Sample > mrideblur), docks the motion-correction widget,
runs aligned-SENSE with joint coil estimation from it, and saves the whole window: uncorrected,
corrected and truth side by side with PSNR, the widget and the motion plot.

Needs a display; on a headless machine run it under Xvfb::

    xvfb-run -a .venv/bin/python napari_plugin/scripts/screenshot.py            # -> docs/napari.png
    xvfb-run -a .venv/bin/python napari_plugin/scripts/screenshot.py --out x.png --iterations 80
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "napari.png")
    parser.add_argument("--iterations", type=int, default=60, help="max_iter of the correction (default 60)")
    parser.add_argument("--coils", default="joint", choices=("espirit", "joint"))
    parser.add_argument("--size", type=int, nargs=2, default=(1500, 820), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the correction")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True, title="napari — mrideblur")
    viewer.window._qt_window.resize(*args.size)
    viewer.open_sample("napari-mrideblur", "motion_corrupted_mni")
    _, widget = viewer.window.add_plugin_dock_widget("napari-mrideblur", "Motion correction")
    widget.method.setCurrentText("aligned-sense")
    widget.coils.setCurrentText(args.coils)
    widget.iterations.setValue(args.iterations)
    widget.side_by_side.setChecked(True)

    results: list = []
    widget.run_finished.connect(results.append)
    app = QApplication.instance()
    t0 = time.perf_counter()
    widget.run()
    while not results:
        if time.perf_counter() - t0 > args.timeout:
            widget.cancel()
            raise SystemExit(f"the correction took longer than {args.timeout} s")
        app.processEvents()
        time.sleep(0.02)
    out = results[0]
    if isinstance(out, Exception):
        raise out
    for _ in range(25):  # let the canvas and the plot redraw
        app.processEvents()
        time.sleep(0.02)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"{args.out}: PSNR {out.psnr_db}, {out.seconds:.1f} s")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
