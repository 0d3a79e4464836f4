"""What the commands print: text kept intact (no markup), --version, list, notices."""

from __future__ import annotations

import subprocess
import sys
import types

import vidpose
from vidpose.cli import main
from vidpose.io import read_poses

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "data.image_height=64",
    "data.image_width=64",
    "training.max_steps=2",
    "training.batch_size=4",
]


def _run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help_config_keeps_bracketed_text(capsys):
    code, out, _ = _run(["train", "--help-config"], capsys)
    assert code == 0
    assert "training.max_steps" in out
    assert "[float, >= 0]" in out and "[int, > 0]" in out
    assert "[true or false]" in out


def test_error_messages_keep_bracketed_text(tiny_project, capsys):
    code, _, err = _run(["train", str(tiny_project), "model.backbone=[a,b]"], capsys)
    assert code == 2
    assert "model.backbone=[a,b]" in err and "Traceback" not in err
    assert not (tiny_project / "models").exists()


def test_paths_with_brackets_are_printed_as_they_are(tmp_path, capsys):
    code, _, err = _run(["check", str(tmp_path / "run[1]" / "[bold]x")], capsys)
    assert code == 2 and f"{tmp_path}/run[1]/[bold]x: no such folder" in err


def test_version(capsys):
    code, out, _ = _run(["--version"], capsys)
    assert code == 0 and out.strip() == f"vidpose {vidpose.__version__}"


def test_list_backbones_shows_stride_and_channels(capsys):
    code, out, _ = _run(["list", "backbones"], capsys)
    assert code == 0
    (line,) = [ln for ln in out.splitlines() if ln.startswith("resnet50 ")]
    assert "stride 32" in line and "channels 2048" in line and "ResNet-50" in line
    assert any(ln.startswith("resnet18 ") for ln in out.splitlines())


def test_list_readers_shows_each_available_or_why_not(capsys, monkeypatch):
    from vidpose.video import READERS

    monkeypatch.setitem(READERS.import_errors, "fakegpu", "ImportError: no module named 'x'")
    code, out, _ = _run(["list", "readers"], capsys)
    assert code == 0
    lines = {ln.split()[0]: ln for ln in out.splitlines()}
    assert "CPU" in lines["pyav"]
    for gpu in ("nvdec", "dali"):  # registered here, or listed with the import error
        assert "GPU" in lines[gpu] or "unavailable here" in lines[gpu]
    assert "unavailable here" in lines["fakegpu"] and "no module named 'x'" in lines["fakegpu"]


def test_reader_choices_come_from_the_registry(monkeypatch, capsys):
    from vidpose.video import READERS
    from vidpose.video.base import ReaderSpec

    monkeypatch.setitem(READERS._specs, "myreader", ReaderSpec("myreader", object, 0, False, ""))
    code, _, err = _run(["predict", "M", "v.mp4", "--reader", "myreadr"], capsys)
    assert code == 2 and "did you mean 'myreader'" in err
    code, _, err = _run(["predict", "M", "v.mp4", "--reader", "myreader"], capsys)
    assert code == 2 and "--reader" not in err and "MODEL_DIR M: no such folder" in err


def test_help_and_list_do_not_import_torch():
    code = (
        "import sys\n"
        "from vidpose.cli import main\n"
        "for argv in (['--help'], ['predict', '--help'], ['train', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert main(['list', 'formats']) == 0\n"
        "print('heavy:', sorted(m for m in ('torch', 'lightning') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "heavy: []" in proc.stdout


def test_api_names_are_not_hidden_by_subpackages():
    import vidpose.training.run as run  # a subpackage import binds its own name only

    assert vidpose.train is run.train
    assert isinstance(sys.modules["vidpose.training"], types.ModuleType)
    assert callable(vidpose.train_ensemble) and callable(vidpose.predict_videos)


def test_synthesize_overwrite(tmp_path, capsys):
    out = tmp_path / "p"
    argv = ["synthesize", str(out), "--labeled", "2", "--videos", "1", "--frames", "8",
            "--height", "32", "--width", "32", "--keypoints", "3"]  # fmt: skip
    assert _run(argv, capsys)[0] == 0
    first = read_poses(out / "CollectedData.csv")
    code, _, err = _run(argv, capsys)
    assert code == 2 and "--overwrite" in err
    code, out_text, _ = _run([*argv, "--seed", "1", "--overwrite"], capsys)
    assert code == 0 and "wrote synthetic project" in out_text
    second = read_poses(out / "CollectedData.csv")
    assert second.keypoints == first.keypoints and not (second.coords == first.coords).all()


def test_train_resume_prints_what_is_kept_and_changed(tiny_project, tmp_path, capsys):
    model_dir = tmp_path / "model"
    argv = ["train", str(tiny_project), *TINY, "--model-dir", str(model_dir), "--no-progress"]
    assert _run(argv, capsys)[0] == 0
    resume = ["train", str(tiny_project), "training.max_steps=3", "--model-dir", str(model_dir),
              "--resume", "--no-progress"]  # fmt: skip
    code, out, _ = _run(resume, capsys)
    assert code == 0
    assert f"resuming {model_dir} from step 2 of 3" in out
    assert "changed: training.max_steps: 2 -> 3" in out
