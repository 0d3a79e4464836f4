"""Networks compiled ahead of time for CPU prediction (vidpose export --format aoti): what
prediction then uses, equal to the eager network; when it must not be used; refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from vidpose.aot import AOT_FILE
from vidpose.cli import main as cli_main
from vidpose.errors import VidposeError
from vidpose.export import compile_model
from vidpose.predict import load_model
from vidpose.predict.run import Predictor
from vidpose.training import train

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "model.heatmap_stride=2",
    "data.image_height=64",
    "data.image_width=64",
    "training.batch_size=4",
    "training.max_steps=4",
]

pytestmark = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("c++", "g++", "clang++")), reason="no C++ compiler"
)


@pytest.fixture(scope="module")
def compiled(tiny_project_src, tmp_path_factory):
    """A tiny model, compiled through the command line."""
    d = tmp_path_factory.mktemp("aot") / "m"
    train(tiny_project_src, TINY, model_dir=d, progress=False)
    assert cli_main(["export", str(d), "--format", "aoti"]) == 0
    return d


@pytest.fixture(scope="module")
def video(tiny_project_src):
    return next((tiny_project_src / "videos").glob("*.mp4"))


def _predict(model, video):
    got = {}
    model.predict_videos([video], batch_size=8, on_done=lambda p, r, s: got.setdefault("r", r))
    res = got["r"]
    return res[0] if isinstance(res, list) else res


def test_prediction_on_cpu_uses_the_compiled_network_and_matches_eager(compiled, video):
    info = json.loads((compiled / AOT_FILE).with_name("model_cpu.pt2.json").read_text())
    assert info["format"] == "aoti" and info["torch_version"] == torch.__version__
    assert info["parity"]["max_abs_px"] <= 0.01 and info["parity"]["compiled_fps"] > 0
    aot = load_model(compiled, device="cpu")
    eager = load_model(compiled, device="cpu", aot=False)
    assert aot.aot is not None and eager.aot is None
    calls = []
    real = aot.aot
    aot.aot = lambda x: calls.append(x.shape) or real(x)
    a, b = _predict(aot, video), _predict(eager, video)
    assert calls and sum(s[0] for s in calls) == 48  # every frame went through it, any batch
    assert a.n_frames == b.n_frames == 48
    np.testing.assert_allclose(a.coords, b.coords, atol=1e-3)
    np.testing.assert_allclose(a.likelihood, b.likelihood, atol=1e-4)
    images = np.zeros((3, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        aot.predict_images(images).coords, eager.predict_images(images).coords, atol=1e-3
    )


def test_a_package_of_another_checkpoint_or_torch_is_not_used(compiled, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(compiled, d)
    with pytest.warns(UserWarning, match="compiled from another best.ckpt"):
        ckpt = d / "checkpoints" / "best.ckpt"
        ckpt.write_bytes(ckpt.read_bytes() + b"\0")  # a retrained model, as far as it can tell
        assert load_model(d, device="cpu").aot is None
    shutil.copy(compiled / "checkpoints" / "best.ckpt", ckpt)
    info_path = (d / AOT_FILE).with_name("model_cpu.pt2.json")
    info = json.loads(info_path.read_text())
    info["torch_version"] = "1.0.0"
    info_path.write_text(json.dumps(info))
    with pytest.warns(UserWarning, match="compiled by torch 1.0.0"):
        assert load_model(d, device="cpu").aot is None
    info_path.write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable"):
        assert load_model(d, device="cpu").aot is None
    info_path.unlink()  # a package without its description (an interrupted export): ignored
    assert load_model(d, device="cpu").aot is None


def test_refusals_and_failures_keep_the_package_there(compiled, tmp_path, monkeypatch, capsys):
    d = tmp_path / "m"
    shutil.copytree(compiled, d)
    before = (d / AOT_FILE).read_bytes()
    assert cli_main(["export", str(d), "--format", "aoti", "--out", str(tmp_path / "x.pt2")]) == 2
    assert "model_cpu.pt2" in capsys.readouterr().err

    def broken(*args, **kwargs):
        raise RuntimeError("inductor cannot lower this\nmore lines")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", broken)
    with pytest.raises(VidposeError, match=r"not written: compiling ahead of time failed.*lower"):
        compile_model(d)
    assert (d / AOT_FILE).read_bytes() == before
    assert sorted(p.name for p in (d / AOT_FILE).parent.iterdir()) == [
        "model_cpu.pt2",
        "model_cpu.pt2.json",
    ]


def test_a_context_network_is_refused(tiny_project_src, tmp_path):
    d = tmp_path / "ctx"
    train(
        tiny_project_src,
        [*TINY, "model.head=heatmap_context", "model.context_frames=3"],
        model_dir=d,
        progress=False,
    )
    with pytest.raises(VidposeError, match=r"temporal window.*--format onnx"):
        compile_model(d)
    assert not (d / AOT_FILE).exists()


def test_an_ensemble_predicts_with_each_members_package(compiled, video, tmp_path, monkeypatch):
    ens = tmp_path / "ens"  # two copies of one compiled model: an ensemble without training
    for name in ("seed0", "seed1"):
        shutil.copytree(compiled, ens / name)
    (ens / "ensemble.json").write_text(json.dumps({"members": ["seed0", "seed1"], "seeds": [0, 1]}))
    predictor = Predictor(ens, tmp_path / "out", device="cpu")
    predictor.load()
    assert [m.aot is not None for m in predictor.models] == [True, True]

    seen = []
    monkeypatch.setattr(
        "vidpose.export.compile_model", lambda d, **kw: seen.append(d) or _result(compiled)
    )
    assert cli_main(["export", str(ens), "--format", "aoti"]) == 0
    assert seen == [ens / "seed0", ens / "seed1"]


def _result(d):
    from vidpose.aot import CompileResult

    return CompileResult(d / AOT_FILE, d / AOT_FILE, "best.ckpt", 1, "x", 0.0, 0.0, 1.0, 1.0, 1.0)
