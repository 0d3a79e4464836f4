"""ONNX export (vidpose export): parity with PyTorch, the documented pre/post-processing, the
context model's windows, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidpose.cli import main as cli_main
from vidpose.errors import VidposeError
from vidpose.export import export_model
from vidpose.predict import load_model
from vidpose.training import train
from vidpose.video import open_video

pytest.importorskip("onnxruntime")

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "model.heatmap_stride=2",
    "data.image_height=64",
    "data.image_width=64",
    "training.batch_size=4",
    "training.max_steps=4",
]


@pytest.fixture(scope="module")
def single_model(tiny_project_src, tmp_path_factory):
    d = tmp_path_factory.mktemp("export") / "single"
    train(tiny_project_src, TINY, model_dir=d, progress=False)
    return d


@pytest.fixture(scope="module")
def video(tiny_project_src):
    return next((tiny_project_src / "videos").glob("*.mp4"))


def test_cli_export_runs_in_onnxruntime_as_documented(single_model, video, tmp_path):
    """The .json's recipe (resize, run, map to original px) reproduces predict_video."""
    import onnxruntime as ort

    out = tmp_path / "m.onnx"
    rc = cli_main(["export", str(single_model), "--check-video", str(video), "--out", str(out)])
    assert rc == 0 and out.is_file()
    info = json.loads(out.with_name("m.onnx.json").read_text())
    assert info["input"]["name"] == "images" and info["input"]["shape"] == [-1, 3, 64, 64]
    assert info["parity"]["max_abs_px"] <= 0.01 and info["parity"]["frames_checked"] == 48
    assert info["parity"]["onnxruntime_fps"] > 0 and info["keypoints"]

    with open_video(video, reader="pyav") as vr:
        frames = np.concatenate([b.frames for b in vr.iter_batches(64)])
    h0, w0 = frames.shape[1:3]
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    coords, conf = session.run(None, {"images": x.numpy()})  # any batch size
    orig = np.empty_like(coords)
    orig[..., 0] = (coords[..., 0] + 0.5) * w0 / 64 - 0.5
    orig[..., 1] = (coords[..., 1] + 0.5) * h0 / 64 - 0.5
    ref = load_model(single_model, device="cpu", precision="32").predict_video(video)
    np.testing.assert_allclose(orig, ref.coords, atol=0.01)
    np.testing.assert_allclose(conf, ref.likelihood, atol=1e-3)


def test_context_model_exports_windows(tiny_project_src, tmp_path):
    d = tmp_path / "ctx"
    train(
        tiny_project_src,
        [*TINY, "model.head=heatmap_context", "model.context_frames=3"],
        model_dir=d,
        progress=False,
    )
    res = export_model(d, check_frames=8)  # the labeled images, each its own window
    assert res.path == d / "export" / "model.onnx" and res.path.is_file()
    assert res.input_name == "windows" and res.input_shape == [-1, 3, 3, 64, 64]
    assert res.frames_checked == 8 and res.max_abs_px <= 0.01
    assert "labeled images" in res.check_source


def test_refusals_write_nothing(single_model, video, tmp_path, monkeypatch):
    out = tmp_path / "strict.onnx"
    with pytest.raises(VidposeError, match="not written: ONNX Runtime differs"):
        export_model(single_model, out, check_video=video, check_frames=4, tolerance_px=1e-12)
    assert not out.exists() and not list(tmp_path.glob("strict*"))
    with pytest.raises(VidposeError, match="format must be onnx"):
        export_model(single_model, out, format="tensorrt")
    monkeypatch.setattr("vidpose.export.missing_onnx_packages", lambda: ["onnxscript"])
    with pytest.raises(VidposeError, match=r"needs onnxscript.*vidpose\[onnx\]"):
        export_model(single_model, out)


def test_an_exporter_failure_is_a_clear_error(single_model, video, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::something\nlong trace")

    monkeypatch.setattr(torch.onnx, "export", broken)
    out = tmp_path / "x.onnx"
    with pytest.raises(VidposeError, match=r"exporter failed.*resnet18.*aten::something$"):
        export_model(single_model, out, check_video=video, check_frames=4)
    assert not list(tmp_path.glob("x*"))
