"""mrideblur.memory: glibc keeps freed buffers unless the user opts out."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = "from mrideblur.memory import keep_freed_memory as k; print(k(), k())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
@pytest.mark.parametrize("env, want", [({}, "True True"), ({"MRIDEBLUR_KEEP_FREED_MEMORY": "0"}, "False False")])
def test_keep_freed_memory_once_and_opt_out(env, want, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout.strip()
    assert out == want
