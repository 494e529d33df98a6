#!/usr/bin/env bash
# Install mrideblur and its test dependencies into ./.venv, then run the whole test suite,
# slow end-to-end checks included.  Extra arguments go to pytest.
#   bash tests/run.sh                 # everything
#   bash tests/run.sh -m "not slow"   # the quick suite only
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch is pinned to the CPU build first: an unpinned torch pulls a multi-GB CUDA build.
# napari and the plugin (napari_plugin/) come too: tests/test_napari_plugin.py drives a viewer.
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0 -e ".[dev,napari]" \
  -e "./napari_plugin[testing]"
# The napari tests need a display: on CI or as root, install an in-memory X server (Xvfb) and the
# GL/xcb libraries Qt needs when xvfb-run is missing (Debian/Ubuntu; never asks on stdin).  The
# ISMRMRD reader test reads a file written by the format's own tool (Debian's ismrmrd-tools); the
# template test reads Colin27 and INIA19 from Debian's mricron-data (16 MB).
if { ! command -v xvfb-run >/dev/null 2>&1 || ! command -v ismrmrd_generate_cartesian_shepp_logan >/dev/null 2>&1 \
     || [ ! -f /usr/share/mricron/templates/ch2.nii.gz ]; } \
  && command -v apt-get >/dev/null 2>&1 && { [ "${CI:-}" = "true" ] || [ "$(id -u)" = 0 ]; }; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq xvfb xauth libgl1-mesa-dri libegl1 \
      libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libdbus-1-3 ismrmrd-tools \
      mricron-data; } \
    </dev/null >/dev/null || echo "tests/run.sh: could not install Xvfb / ismrmrd-tools / mricron-data; those tests will be skipped" >&2
fi
if [ "$#" -eq 0 ]; then
  set -- -m "slow or not slow"
fi
if command -v xvfb-run >/dev/null 2>&1; then
  exec xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest "$@"
