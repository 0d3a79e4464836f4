"""Every command, given bad arguments or bad files: a non-zero exit code, a message naming the
option or file, no traceback, and nothing computed.

Most cases run in-process through ``main``; a handful run through ``python -m vidpose.cli``
to show that the real entry point prints no traceback either.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import vidpose
from vidpose.cli import main

# (id, argv, expected exit code, substrings of the output); {name} is a path of the workspace.
CASES: list[tuple[str, list[str], int, list[str]]] = [
    # -- argument types and ranges, checked by argparse (exit 2, option named) --
    ("predict-batch-size-0", ["predict", "{model}", "{video}", "--batch-size", "0"], 2,
     ["--batch-size", "integer >= 1"]),
    ("predict-device-tpu", ["predict", "{model}", "{video}", "--device", "tpu"], 2,
     ["--device", "cuda:N", "'tpu'"]),
    ("predict-precision", ["predict", "{model}", "{video}", "--precision", "fp8"], 2,
     ["--precision", "bf16"]),
    ("predict-reader-unknown", ["predict", "{model}", "{video}", "--reader", "nvdc"], 2,
     ["--reader", "unknown reader 'nvdc'", "did you mean 'nvdec'", "pyav"]),
    ("label-video-crf", ["label-video", "{pred}", "{video}", "--out", "{root}/l.mp4", "--crf",
     "99"], 2, ["--crf", "from 0 to 51"]),
    ("label-video-min-likelihood", ["label-video", "{pred}", "{video}", "--out",
     "{root}/l.mp4", "--min-likelihood", "5"], 2, ["--min-likelihood", "from 0 to 1"]),
    ("label-video-marker-size", ["label-video", "{pred}", "{video}", "--out", "{root}/l.mp4",
     "--marker-size", "-3"], 2, ["--marker-size", ">= 1"]),
    ("label-video-preset", ["label-video", "{pred}", "{video}", "--out", "{root}/l.mp4",
     "--preset", "warp9"], 2, ["--preset", "'warp9'", "ultrafast"]),
    ("evaluate-outliers", ["evaluate", "{model}", "--outliers", "-5"], 2,
     ["--outliers", ">= 0"]),
    ("evaluate-z-threshold", ["evaluate", "{model}", "--z-threshold", "0"], 2,
     ["--z-threshold", "> 0"]),
    ("evaluate-min-likelihood", ["evaluate", "{model}", "--min-likelihood", "5"], 2,
     ["--min-likelihood"]),
    ("evaluate-device", ["evaluate", "{model}", "--device", "tpu"], 2, ["--device"]),
    ("extract-context", ["extract-frames", "{project}", "--video", "{video}", "--frames", "1",
     "--context", "-2"], 2, ["--context", ">= 0"]),
    ("extract-frames-list", ["extract-frames", "{project}", "--video", "{video}", "--frames",
     "3,x"], 2, ["--frames", "'3,x'"]),
    ("train-seeds", ["train", "{project}", "--seeds", "a,b"], 2, ["--seeds", "'a,b'"]),
    ("train-seeds-twice", ["train", "{project}", "--seeds", "1,1"], 2, ["--seeds"]),
    ("smooth-smoothing", ["smooth", "{pred}", "--out", "{root}/s.csv", "--smoothing", "-1"],
     2, ["--smoothing", "auto or a number > 0"]),
    ("smooth-smoothing-word", ["smooth", "{pred}", "--out", "{root}/s.csv", "--smoothing",
     "lots"], 2, ["--smoothing", "'lots'"]),
    ("synthesize-labeled", ["synthesize", "{root}/syn", "--labeled", "0"], 2, ["--labeled"]),
    ("synthesize-videos", ["synthesize", "{root}/syn", "--videos", "0"], 2, ["--videos"]),
    ("synthesize-frames", ["synthesize", "{root}/syn", "--frames", "-1"], 2, ["--frames"]),
    ("synthesize-keypoints", ["synthesize", "{root}/syn", "--keypoints", "0"], 2,
     ["--keypoints"]),
    ("synthesize-height-odd", ["synthesize", "{root}/syn", "--height", "63"], 2,
     ["--height", "even"]),
    ("synthesize-width-tiny", ["synthesize", "{root}/syn", "--width", "4"], 2, ["--width"]),
    ("demo-device", ["demo", "--out", "{root}/demo", "--device", "tpu"], 2, ["--device"]),
    ("list-nope", ["list", "nope"], 2, ["'nope'", "backbones", "readers"]),
    # -- inputs and outputs, checked before any work (exit 2, file named) --
    ("check-missing-project", ["check", "{root}/missing"], 2,
     ["PROJECT_DIR", "missing", "no such folder"]),
    ("check-file-not-folder", ["check", "{afile}"], 2, ["notes.txt", "is a file"]),
    ("train-missing-project", ["train", "{root}/missing"], 2, ["PROJECT_DIR", "missing"]),
    ("train-file-not-folder", ["train", "{afile}"], 2, ["notes.txt", "is a file"]),
    ("train-no-project", ["train"], 2, ["PROJECT_DIR"]),
    ("train-model-dir-is-file", ["train", "{project}", "--model-dir", "{afile}"], 2,
     ["--model-dir", "notes.txt", "is a file"]),
    ("predict-not-a-model", ["predict", "{notmodel}", "{video}"], 2,
     ["not_a_model", "not a vidpose model directory"]),
    ("predict-model-is-file", ["predict", "{afile}", "{video}"], 2, ["MODEL_DIR", "notes.txt"]),
    ("predict-truncated-checkpoint", ["predict", "{broken}", "{video}", "--device", "cpu",
     "--no-progress"], 2, ["best.ckpt", "damaged"]),
    ("predict-out-is-file", ["predict", "{model}", "{video}", "--out", "{afile}"], 2,
     ["--out", "notes.txt", "is a file"]),
    ("predict-only-bad-videos", ["predict", "{model}", "{garbage}", "{root}/missing.mp4",
     "{adir}", "--device", "cpu"], 1,
     ["garbage.mp4: not a readable video", "missing.mp4: no such file",
      "folder: is a folder", "3 of 3"]),
    ("smooth-out-extension", ["smooth", "{pred}", "--out", "{root}/s.txt"], 2,
     ["--out", "s.txt", "'.txt'", ".csv"]),
    ("smooth-out-is-folder", ["smooth", "{pred}", "--out", "{adir}"], 2,
     ["--out", "is a folder"]),
    ("smooth-out-parent-is-file", ["smooth", "{pred}", "--out", "{afile}/s.csv"], 2,
     ["--out", "notes.txt is a file"]),
    ("smooth-out-is-input", ["smooth", "{pred}", "--out", "{pred}"], 2,
     ["--out", "one of the input"]),
    ("smooth-missing-prediction", ["smooth", "{root}/missing.csv", "--out", "{root}/s.csv"], 2,
     ["PRED", "missing.csv", "no such file"]),
    ("smooth-multiview-without-project", ["smooth", "{pred}", "--out", "{root}/s.csv",
     "--mode", "multiview"], 2, ["--project"]),
    ("smooth-multiview-missing-project", ["smooth", "{pred}", "--out", "{root}/s.csv",
     "--mode", "multiview", "--project", "{root}/missing"], 2, ["--project", "missing"]),
    ("label-video-out-extension", ["label-video", "{pred}", "{video}", "--out", "{root}/l.xyz"],
     2, ["--out", "'.xyz'", ".mp4", ".mkv"]),
    ("label-video-out-is-folder", ["label-video", "{pred}", "{video}", "--out", "{adir}"], 2,
     ["--out", "is a folder"]),
    ("label-video-label-count", ["label-video", "{pred}", "{video}", "--out", "{root}/l.mp4",
     "--label", "a", "--label", "b"], 2, ["--label", "2 time(s) for 1"]),
    ("label-video-missing-video", ["label-video", "{pred}", "{root}/missing.mp4", "--out",
     "{root}/l.mp4"], 2, ["VIDEO", "missing.mp4"]),
    ("label-video-missing-prediction", ["label-video", "{root}/missing.csv", "{video}",
     "--out", "{root}/l.mp4"], 2, ["PRED", "missing.csv"]),
    ("label-video-missing-skeleton", ["label-video", "{pred}", "{video}", "--out",
     "{root}/l.mp4", "--skeleton", "{root}/missing"], 2, ["missing", "no such project"]),
    ("evaluate-not-a-model", ["evaluate", "{notmodel}"], 2,
     ["not_a_model", "not a vidpose model directory"]),
    ("evaluate-missing-video", ["evaluate", "{model}", "--video", "{root}/missing.mp4"], 2,
     ["--video", "missing.mp4"]),
    ("extract-missing-project", ["extract-frames", "{root}/missing", "{pred}"], 2,
     ["PROJECT_DIR", "missing"]),
    ("extract-project-is-file", ["extract-frames", "{afile}", "{pred}"], 2,
     ["PROJECT_DIR", "is a file"]),
    ("extract-nothing-to-extract", ["extract-frames", "{project}"], 2,
     ["OUTLIERS.csv", "--video"]),
    ("extract-missing-outliers", ["extract-frames", "{project}", "{root}/missing.csv"], 2,
     ["OUTLIERS.csv", "missing.csv"]),
    ("extract-frames-without-video", ["extract-frames", "{project}", "--frames", "1"], 2,
     ["--frames needs --video"]),
    ("extract-missing-video", ["extract-frames", "{project}", "--video", "{root}/missing.mp4",
     "--frames", "1"], 2, ["--video", "missing.mp4"]),
    ("synthesize-out-is-file", ["synthesize", "{afile}"], 2, ["OUT_DIR", "is a file"]),
    ("synthesize-not-empty", ["synthesize", "{project}"], 2, ["not empty", "--overwrite"]),
    ("synthesize-too-many-labeled", ["synthesize", "{root}/syn", "--frames", "10", "--labeled",
     "8"], 2, ["--labeled 8", "--frames"]),
    ("demo-out-is-file", ["demo", "--out", "{afile}"], 2, ["--out", "is a file"]),
]  # fmt: skip

# The real entry point, in a fresh interpreter: argparse, usage, model and video errors.
SUBPROCESS = [
    "list-nope",
    "check-missing-project",
    "smooth-out-extension",
    "predict-truncated-checkpoint",
    "predict-only-bad-videos",
]


@pytest.fixture(scope="module")
def ws(tiny_project_src, cli_model, broken_model, cli_video, tmp_path_factory) -> dict[str, str]:
    """Paths the cases name: good inputs, a file, a folder, garbage, and a non-model."""
    root = tmp_path_factory.mktemp("ws")
    project = root / "project"
    shutil.copytree(tiny_project_src, project)
    (root / "notes.txt").write_text("not a folder\n")
    (root / "folder").mkdir()
    (root / "not_a_model").mkdir()
    (root / "garbage.mp4").write_bytes(bytes(range(256)) * 16)
    paths = {
        "root": root,
        "project": project,
        "model": cli_model,
        "broken": broken_model,
        "video": project / "videos" / cli_video.name,
        "pred": project / "ground_truth" / "session00.csv",
        "afile": root / "notes.txt",
        "adir": root / "folder",
        "notmodel": root / "not_a_model",
        "garbage": root / "garbage.mp4",
    }
    return {k: str(v) for k, v in paths.items()}


def _argv(case: list[str], ws: dict[str, str]) -> list[str]:
    return [a.format(**ws) for a in case]


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out + err


def _listing(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.mark.parametrize(("argv", "code", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_arguments_and_files_are_clear_errors(argv, code, expected, ws, capsys):
    before = _listing(Path(ws["root"]))
    got, output = _run(_argv(argv, ws), capsys)
    assert got == code, output
    for text in expected:
        assert text.format(**ws) in output, output
    assert "Traceback" not in output
    # nothing was computed: no file appeared or vanished in the workspace
    assert _listing(Path(ws["root"])) == before


@pytest.mark.parametrize("case_id", SUBPROCESS)
def test_entry_point_prints_no_traceback(case_id, ws):
    _, argv, code, expected = next(c for c in CASES if c[0] == case_id)
    proc = subprocess.run(
        [sys.executable, "-m", "vidpose.cli", *_argv(argv, ws)],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "VIDPOSE_DEBUG"},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == code, output
    for text in expected:
        assert text.format(**ws) in output, output
    assert "Traceback" not in output


# -- what main does with errors no argument check catches ----------------------------------------


@pytest.fixture
def raising(monkeypatch, tmp_path):
    """``vidpose check DIR`` whose library call raises the given exception."""

    def arm(exc: BaseException) -> list[str]:
        def boom(*_args, **_kwargs):
            raise exc

        monkeypatch.setattr(vidpose, "run_check", boom)
        return ["check", str(tmp_path)]

    return arm


def test_a_bug_is_one_line_naming_the_exception_and_how_to_see_the_traceback(
    raising, capsys, monkeypatch
):
    monkeypatch.delenv("VIDPOSE_DEBUG", raising=False)
    code, output = _run(raising(TypeError("unsupported operand [x]")), capsys)
    assert code == 1
    assert "bug" in output and "TypeError: unsupported operand [x]" in output
    assert "VIDPOSE_DEBUG=1" in output and "Traceback" not in output


def test_vidpose_debug_shows_the_traceback(raising, capsys, monkeypatch):
    monkeypatch.setenv("VIDPOSE_DEBUG", "1")
    code, output = _run(raising(TypeError("boom")), capsys)
    assert code == 1 and "Traceback" in output and "TypeError: boom" in output


def test_os_error_names_the_file_the_user_knows(raising, capsys, tmp_path):
    # atomic writes fail on their temporary file: the message names the target
    temp = tmp_path / ".out.csv.k2j4_x9a.tmp"
    code, output = _run(raising(OSError(errno.ENOSPC, "No space left on device", str(temp))),
                        capsys)  # fmt: skip
    assert code == 1
    assert f"cannot write {tmp_path / 'out.csv'}: No space left on device" in output
    assert "Traceback" not in output


def test_permission_error_names_the_file(raising, capsys, tmp_path):
    code, output = _run(raising(PermissionError(errno.EACCES, "Permission denied", "/x/y.csv")),
                        capsys)  # fmt: skip
    assert code == 1 and "/x/y.csv: Permission denied" in output


def test_ctrl_c_is_exit_130(raising, capsys):
    code, output = _run(raising(KeyboardInterrupt()), capsys)
    assert code == 130 and "interrupted" in output and "Traceback" not in output


def test_unwritable_output_folder_is_refused_before_work(ws, capsys, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access

    def access(path, mode, *args, **kwargs):  # a folder we may not write, even as root
        if Path(path) == locked and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    code, output = _run(["smooth", ws["pred"], "--out", str(locked / "s.csv")], capsys)
    assert code == 2
    assert f"--out {locked / 's.csv'}: cannot write into {locked} (permission denied)" in output
    code, output = _run(["train", ws["project"], "--model-dir", str(locked / "m")], capsys)
    assert code == 2 and "--model-dir" in output and "permission denied" in output
    assert not list(locked.iterdir())
