"""``mrideblur demo``: the printed summary, the per-stage progress bars, the help text."""

import pytest

from mrideblur.cli import ProgressBar, main
from mrideblur.demo import _stage, summary_lines

SUMMARY = {
    "photo": {"image_shape": [256, 256], "kernel_size": 15, "region": [242, 242], "seconds": 61.7,
              "psnr_db": {"blurred": 21.5, "inverse": 6.25, "wiener": 24.9, "hyper-laplacian": 26.1,
                          "map": 19.8, "vb": 25.4},
              "kernel_similarity": {"map": 0.52, "vb": 0.93}},
    "mri": {"image_shape": [128, 128], "ncoil": 8, "nshot": 16, "method": "aligned-sense", "seconds": 95.2,
            "psnr_db": {"uncorrected": 18.74, "corrected": 35.46},
            "motion_rmse": {"rotation_deg": 0.86, "translation_px": 0.016},
            "data_fit": {"uncorrected": 0.0878, "corrected": 0.0268, "improved": True}},
    "out_dir": "/tmp/demo_out",
}


def test_summary_lines_give_every_number():
    text = "\n".join(summary_lines(SUMMARY))
    for label, db in (("blurred input", "21.50"), ("inverse filter", "6.25"), ("Wiener", "24.90"),
                      ("hyper-Laplacian", "26.10"), ("blind MAP", "19.80"), ("blind VB", "25.40")):
        assert any(label in line and f"{db} dB" in line for line in text.splitlines()), label
    assert "kernel similarity 0.52" in text and "kernel similarity 0.93" in text
    assert "18.74 dB uncorrected -> 35.46 dB corrected" in text
    assert "0.86 deg" in text and "0.02 px" in text
    assert "improved (relative misfit 0.0878 -> 0.0268)" in text
    assert "(62 s)" in text and "(95 s)" in text
    assert "16 shots, 8 coils" in text
    assert [line for line in text.splitlines() if "/tmp/demo_out" in line] == [
        line for line in text.splitlines() if line.startswith("output: ")]
    assert len(text.splitlines()) <= 16


def test_summary_lines_say_when_the_fit_did_not_improve_and_skip_missing_parts():
    bad = {"mri": {**SUMMARY["mri"], "data_fit": {"uncorrected": 0.05, "corrected": 0.06, "improved": False}}}
    lines = summary_lines(bad)
    assert any("NOT improved" in line for line in lines)
    assert not any("photograph" in line or line.startswith("output") for line in lines)
    assert summary_lines({"out_dir": "d"}) == [summary_lines({"out_dir": "d"})[0]]


def test_progress_bar_one_bar_per_stage_each_ending_at_100(capsys):
    with ProgressBar(desc="demo") as bar:
        bar.stage("blur")
        bar(0, 1)
        bar(1, 1)
        bar.stage("aligned-SENSE correction")
        bar(0, 1)
        bar(40, 162, "cost 0.1")  # converges after 40 of at most 162 steps
    err = capsys.readouterr().err
    assert "demo: blur: 100%" in err and "1/1" in err
    assert "demo: aligned-SENSE correction: 100%" in err and "162/162" in err


def test_progress_bar_stays_where_it_stopped_after_an_error(capsys):
    with pytest.raises(KeyboardInterrupt):
        with ProgressBar(desc="x") as bar:
            bar(3, 10)
            raise KeyboardInterrupt
    err = capsys.readouterr().err
    assert "3/10" in err and "10/10" not in err


def test_stage_feeds_a_plain_callback_from_0_to_its_total():
    calls = []
    with _stage(lambda s, t, m="": calls.append((s, t, m)), "blind VB") as inner:
        inner(5, 361, "scale 1/3")
        inner(120, 361, "scale 2/3")  # stopped early
    assert calls[0] == (0, 1, "blind VB")
    assert calls[1] == (5, 361, "blind VB: scale 1/3")
    assert calls[-1][:2] == (361, 361)


def test_stage_does_not_complete_after_an_error():
    calls = []
    with pytest.raises(RuntimeError):
        with _stage(lambda s, t, m="": calls.append((s, t)), "figure") as inner:
            inner(2, 9)
            raise RuntimeError
    assert calls == [(0, 1), (2, 9)]


def test_help_describes_both_parts_and_the_times(capsys):
    assert main(["demo", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("photograph", "MNI152", "aligned-SENSE", "16-shot", "8-coil", "2-core machine", "about 2 minutes"):
        assert words in text, words
    assert "seconds instead" not in text
