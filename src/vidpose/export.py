"""Export a trained model to ONNX, checked against PyTorch on real frames.

    export_model(MODEL_DIR, "model.onnx", check_video="session.mp4")

The ONNX graph is the network from its input tensor to decoded keypoints: soft-argmax and
confidence included, no resizing (do that outside, as :meth:`PoseModel._prepare` does):

- input ``images``: (B, 3, H, W) float32 RGB in [0, 1] at the model's input size; for a context
  model (``model.head=heatmap_context``) ``windows``: (B, W, 3, H, W), frames t - W//2 .. t + W//2
  of each frame t (repeat the first / last frame at a video's ends);
- outputs ``coords`` (B, K, 2) x, y in *input* pixels (pixel centres at integer coordinates) and
  ``confidence`` (B, K) in [0, 1]. Original-frame pixels are ``(x + 0.5) * W0 / W - 0.5`` (and
  the same for y with H0 / H).

Beside ``model.onnx`` a ``model.onnx.json`` records the keypoints, input size, context frames,
that formula and the parity check: the largest difference between ONNX Runtime and PyTorch
(float32, CPU) over the checked frames, in original-frame pixels, and both frame rates on this
machine's CPU. The export is refused (nothing written) when the difference exceeds
``tolerance_px``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidpose import __version__
from vidpose._atomic import atomic_path, atomic_write_text
from vidpose.aot import AOT_FILE, CompileResult, checkpoint_digest
from vidpose.data.geometry import input_to_orig
from vidpose.errors import VidposeError

ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
DEFAULT_OPSET = 18
DEFAULT_TOLERANCE_PX = 0.01


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and measured.

    Attributes:
        path: the ONNX file; info_path: its ``.json`` description.
        input_name: ``images`` or ``windows``; input_shape: with ``-1`` for the batch.
        frames_checked: frames compared; check_source: where they came from.
        max_abs_px: largest |ONNX - PyTorch| coordinate difference, original-frame px.
        max_abs_confidence: the same for the confidences.
        onnxruntime_fps, torch_fps: frames/s of the network alone on this CPU, same batches.
        providers: ONNX Runtime execution providers used for the check.
    """

    path: Path
    info_path: Path
    input_name: str
    input_shape: list[int]
    frames_checked: int
    check_source: str
    max_abs_px: float
    max_abs_confidence: float
    onnxruntime_fps: float
    torch_fps: float
    providers: list[str]


def missing_onnx_packages() -> list[str]:
    """The packages of the ``onnx`` extra that are not installed."""
    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]


class _Exported(torch.nn.Module):
    """network input -> (coords in input px, confidence), the graph that is exported."""

    def __init__(self, network: torch.nn.Module, windows: bool) -> None:
        super().__init__()
        self.network = network
        self.windows = windows

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.network.forward_windows(x).combined if self.windows else self.network(x)
        return out.coords.float(), out.confidence.float()


def _check_frames(model, check_video: Path | None, n: int) -> tuple[np.ndarray, str, bool]:
    """(N, H0, W0, 3) uint8 frames to compare on, where they came from, and whether they are
    consecutive (a video) rather than unrelated labeled images."""
    if check_video is not None:
        from vidpose.video import open_video, probe_video

        count = probe_video(check_video).n_frames or n
        with open_video(check_video, reader="pyav", device="cpu") as reader:
            batch = reader.read_clip(0, min(n, count))
        frames = np.asarray(batch.frames)[np.asarray(batch.valid, dtype=bool)]
        if len(frames) == 0:
            raise VidposeError(f"{check_video}: its first frames do not decode")
        return frames, f"{check_video} (first {len(frames)} frames)", True
    from vidpose.data.labeled import read_image_rgb
    from vidpose.model_dir import ModelDir

    record = ModelDir(model.model_dir).read_record()
    project = Path(record.project)
    names = [p for split in ("test", "val", "train") for p in record.split.get(split, [])]
    paths = [project / p for p in names if (project / p).is_file()][:n]
    if not paths:
        raise VidposeError(
            f"no labeled image of {project} is readable to check the export against; "
            "give a video with --check-video"
        )
    images = [read_image_rgb(p) for p in paths]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:  # keep the most common size: one batch needs one size
        common = max(shapes, key=lambda s: sum(im.shape == s for im in images))
        images = [im for im in images if im.shape == common]
    return np.stack(images), f"{len(images)} labeled images of {project}", False


def _inputs(model, frames: np.ndarray, consecutive: bool) -> torch.Tensor:
    """Network inputs (N, 3, H, W), or windows (N, W, 3, H, W) for a context model."""
    x, _ = model._prepare(torch.from_numpy(np.ascontiguousarray(frames)))
    w = model.network.context_frames
    if w == 1:
        return x
    from vidpose.models.context import edge_padded_windows

    if consecutive:
        return x[edge_padded_windows(len(x), w)]
    return x[:, None].expand(-1, w, -1, -1, -1).contiguous()


def export_model(
    model_dir: str | Path,
    out: str | Path | None = None,
    *,
    format: str = "onnx",
    check_video: str | Path | None = None,
    check_frames: int = 64,
    batch_size: int = 16,
    opset: int = DEFAULT_OPSET,
    tolerance_px: float = DEFAULT_TOLERANCE_PX,
) -> ExportResult | CompileResult:
    """Export ``model_dir``'s network to ONNX and check it against PyTorch (module docstring);
    ``format="aoti"``: compile it ahead of time for CPU prediction instead
    (:func:`compile_model`, into ``MODEL_DIR/export/model_cpu.pt2``; ``out`` and
    ``opset`` do not apply).

    Args:
        model_dir: a complete model directory.
        out: the ONNX file (default ``MODEL_DIR/export/model.onnx``).
        format: ``"onnx"`` or ``"aoti"``.
        check_video: compare on its first ``check_frames`` frames (default: the model's
            labeled images, test split first).
        batch_size: frames per run when checking and timing.
        opset: ONNX opset version.
        tolerance_px: largest allowed difference, original-frame px.

    Raises:
        VidposeError: another format, the ``onnx`` extra missing, nothing to check on, or a
            difference above ``tolerance_px`` (then nothing is written).
    """
    from vidpose.predict import load_model

    if format == "aoti":
        if out is not None:
            raise VidposeError(
                "a network compiled ahead of time is written where prediction looks for it, "
                f"MODEL_DIR/{AOT_FILE.as_posix()}: leave out --out"
            )
        return compile_model(
            model_dir,
            check_video=check_video,
            check_frames=check_frames,
            batch_size=batch_size,
            tolerance_px=tolerance_px,
        )
    if format != "onnx":
        raise VidposeError(f"export format must be onnx or aoti, got {format!r}")
    missing = missing_onnx_packages()
    if missing:
        raise VidposeError(
            f"ONNX export needs {', '.join(missing)}: install the extra with "
            "`uv pip install 'vidpose[onnx]'` (or pip install onnx onnxscript onnxruntime)"
        )
    if check_frames < 1 or batch_size < 1:
        raise VidposeError("check_frames and batch_size must be at least 1")
    model = load_model(model_dir, device="cpu", precision="32")
    out = Path(out) if out is not None else Path(model.model_dir) / "export" / "model.onnx"
    check = Path(check_video) if check_video is not None else None
    frames, source, consecutive = _check_frames(model, check, check_frames)
    orig_hw = (int(frames.shape[1]), int(frames.shape[2]))
    x = _inputs(model, frames, consecutive)
    windows = model.network.context_frames > 1

    wrapper = _Exported(model.network, windows).eval()
    with torch.inference_mode():
        t0 = time.perf_counter()
        ref = [wrapper(x[s : s + batch_size]) for s in range(0, len(x), batch_size)]
        torch_s = time.perf_counter() - t0
    ref_coords = torch.cat([c for c, _ in ref])
    ref_conf = torch.cat([p for _, p in ref]).numpy()

    import onnxruntime as ort

    out.parent.mkdir(parents=True, exist_ok=True)
    name = "windows" if windows else "images"
    # the exporter traces a copy: tracing leaves fake tensors behind in the module it traces
    traced = _Exported(copy.deepcopy(model.network), windows).eval()
    with (
        atomic_path(out) as tmp,
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),  # the exporter's progress lines
    ):
        warnings.simplefilter("ignore")
        batch_dim = torch.export.Dim("batch", min=1, max=65536)
        try:
            torch.onnx.export(
                traced,
                (x[: min(2, len(x))].clone(),),
                str(tmp),
                dynamo=True,
                input_names=[name],
                output_names=["coords", "confidence"],
                dynamic_shapes=({0: batch_dim},),
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
        except Exception as exc:  # an operator or opset the exporter cannot translate
            raise _failed_on(out, "the ONNX exporter", model, exc, f", opset {opset}") from exc
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        xs = x.numpy()
        t0 = time.perf_counter()
        got = [
            session.run(None, {name: xs[s : s + batch_size]}) for s in range(0, len(xs), batch_size)
        ]
        ort_s = time.perf_counter() - t0
        coords = torch.from_numpy(np.concatenate([c for c, _ in got]))
        conf = np.concatenate([p for _, p in got])
        diff_px = float(
            (
                input_to_orig(coords, orig_hw, model.input_hw)
                - input_to_orig(ref_coords, orig_hw, model.input_hw)
            )
            .abs()
            .max()
        )
        diff_conf = float(np.abs(conf - ref_conf).max())
        if not diff_px <= tolerance_px:
            raise VidposeError(
                f"{out}: not written: ONNX Runtime differs from PyTorch by {diff_px:.4g} px "
                f"(tolerance {tolerance_px:g} px) on {source}"
            )
    shape = [-1, *x.shape[1:]]
    result = ExportResult(
        path=out,
        info_path=out.with_name(out.name + ".json"),
        input_name=name,
        input_shape=[int(v) for v in shape],
        frames_checked=len(x),
        check_source=source,
        max_abs_px=diff_px,
        max_abs_confidence=diff_conf,
        onnxruntime_fps=len(x) / ort_s,
        torch_fps=len(x) / torch_s,
        providers=list(session.get_providers()),
    )
    atomic_write_text(result.info_path, json.dumps(_info(model, result, opset), indent=1) + "\n")
    return result


def _failed_on(out: Path, what: str, model, exc: BaseException, detail: str = "") -> VidposeError:
    """``OUT: not written: WHAT failed on this network (backbone, head...): the cause's first
    line``."""
    lines = str(exc).strip().splitlines()
    return VidposeError(
        f"{out}: not written: {what} failed on this network (model.backbone="
        f"{model.cfg.model.backbone}, model.head={model.cfg.model.head}{detail}): "
        f"{type(exc).__name__}: {lines[0] if lines else ''}"
    )


def _info(model, result: ExportResult, opset: int) -> dict[str, Any]:
    h, w = model.input_hw
    return {
        "format": "onnx",
        "opset": opset,
        "model_dir": str(model.model_dir),
        "vidpose_version": __version__,
        "keypoints": model.keypoints,
        "input": {
            "name": result.input_name,
            "shape": result.input_shape,
            "dtype": "float32",
            "range": [0.0, 1.0],
            "layout": "RGB, channels first"
            + (
                ", W consecutive frames centred on each frame"
                if result.input_name == "windows"
                else ""
            ),
            "height": h,
            "width": w,
            "context_frames": model.network.context_frames,
            "resize": "bilinear with antialiasing from the original frame (align_corners=False)",
        },
        "outputs": {
            "coords": "(B, K, 2) x, y in input pixels, pixel centres at integer coordinates",
            "confidence": "(B, K) in [0, 1]",
        },
        "to_original_pixels": f"x0 = (x + 0.5) * W0 / {w} - 0.5; y0 = (y + 0.5) * H0 / {h} - 0.5",
        "parity": {
            k: v
            for k, v in asdict(result).items()
            if k not in ("path", "info_path", "input_name", "input_shape")
        },
    }


# ---------------------------------------------------------------------------------------------
# compiled ahead of time (vidpose.aot describes the package and how prediction uses it)


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def compile_model(
    model_dir: str | Path,
    *,
    check_video: str | Path | None = None,
    check_frames: int = 64,
    batch_size: int = 16,
    tolerance_px: float = 0.01,
    checkpoint: str = "best",
) -> CompileResult:
    """Compile ``model_dir``'s network for CPU into ``MODEL_DIR/export/model_cpu.pt2``.

    Raises:
        VidposeError: a network with a temporal window, no C++ compiler, a network the
            exporter or compiler cannot handle, nothing to check on, or a difference above
            ``tolerance_px`` (then nothing is written; an earlier package stays as it was).
    """
    from vidpose.model_dir import ModelDir
    from vidpose.predict import load_model

    if check_frames < 1 or batch_size < 1:
        raise VidposeError("check_frames and batch_size must be at least 1")
    model = load_model(model_dir, device="cpu", precision="32", checkpoint=checkpoint, aot=False)
    if model.network.context_frames > 1:
        raise VidposeError(
            f"{model_dir}: a network with a temporal window (model.head={model.cfg.model.head}) "
            "predicts through a feature stream and cannot be compiled ahead of time; export it "
            "with --format onnx"
        )
    if _compiler() is None:
        raise VidposeError(
            "compiling ahead of time needs a C++ compiler (c++, g++ or clang++ on PATH, or "
            "CXX): install one (e.g. `apt install g++`) and run this again"
        )
    ckpt = ModelDir(model.model_dir).checkpoint(checkpoint)
    out = Path(model.model_dir) / AOT_FILE
    check = Path(check_video) if check_video is not None else None
    frames, source, consecutive = _check_frames(model, check, check_frames)
    orig_hw = (int(frames.shape[1]), int(frames.shape[2]))
    x = _inputs(model, frames, consecutive).contiguous()
    wrapper = _Exported(model.network, False).eval()
    batches = [x[s : s + batch_size] for s in range(0, len(x), batch_size)]
    with torch.inference_mode():
        wrapper(batches[0])  # warm: the timing below is the steady state
        t0 = time.perf_counter()
        ref = [wrapper(b) for b in batches]
        torch_s = time.perf_counter() - t0

    # the exporter traces a copy: tracing leaves fake tensors behind in the module it traces
    traced = _Exported(copy.deepcopy(model.network), False).eval()
    t0 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=out.parent, prefix=".aoti-") as work,
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        built = Path(work) / "model.pt2"
        try:
            batch_dim = torch.export.Dim("batch", min=1, max=65536)
            with torch.no_grad():
                program = torch.export.export(
                    traced, (x[: min(2, len(x))].clone(),), dynamic_shapes=({0: batch_dim},)
                )
                torch._inductor.aoti_compile_and_package(program, package_path=str(built))
            runner = torch._inductor.aoti_load_package(str(built))
        except Exception as exc:  # an operator the exporter or the compiler cannot handle
            raise _failed_on(out, "compiling ahead of time", model, exc) from exc
        compile_s = time.perf_counter() - t0
        with torch.inference_mode():
            runner(batches[0])
            t0 = time.perf_counter()
            got = [runner(b) for b in batches]
            compiled_s = time.perf_counter() - t0

        def orig(coords: torch.Tensor) -> torch.Tensor:
            return input_to_orig(coords, orig_hw, model.input_hw)

        diff_px = max(float((orig(g[0]) - orig(r[0])).abs().max()) for g, r in zip(got, ref))
        diff_conf = max(float((g[1] - r[1]).abs().max()) for g, r in zip(got, ref))
        if not diff_px <= tolerance_px:
            raise VidposeError(
                f"{out}: not written: the compiled network differs from PyTorch by "
                f"{diff_px:.4g} px (tolerance {tolerance_px:g} px) on {source}"
            )
        result = CompileResult(
            path=out,
            info_path=out.with_name(out.name + ".json"),
            checkpoint=ckpt.name,
            frames_checked=len(x),
            check_source=source,
            max_abs_px=diff_px,
            max_abs_confidence=diff_conf,
            compiled_fps=len(x) / compiled_s,
            torch_fps=len(x) / torch_s,
            compile_seconds=compile_s,
        )
        info = {
            "format": "aoti",
            "device": "cpu",
            "dtype": "float32",
            "torch_version": torch.__version__,
            "vidpose_version": __version__,
            "checkpoint": {"name": ckpt.name, "sha256": checkpoint_digest(ckpt)},
            "input": {"shape": [-1, *x.shape[1:]], "range": [0.0, 1.0], "layout": "RGB, NCHW"},
            "outputs": {"coords": "(B, K, 2) input pixels", "confidence": "(B, K) in [0, 1]"},
            "parity": {
                k: v
                for k, v in asdict(result).items()
                if k not in ("path", "info_path", "checkpoint")
            },
        }
        # the description last: a package without its description is never used
        with atomic_path(out) as tmp:
            os.replace(built, tmp)
        atomic_write_text(result.info_path, json.dumps(info, indent=1) + "\n")
    return result
