"""A model's network compiled ahead of time (AOTInductor) for prediction on CPU.

    vidpose export MODEL_DIR --format aoti      # once: ~20 s for a ResNet-18 on 2 cores
    vidpose predict MODEL_DIR videos/           # then every run on CPU uses it

``torch.compile`` pays its compilation in every process; AOTInductor compiles the exported
network once into a shared library packaged at ``MODEL_DIR/export/model_cpu.pt2``, which a
predicting process loads in milliseconds. On this project's 2-core CPU the demo's network
(ResNet-18, 128 x 128) ran 198 frames/s compiled against 152 eager at batch 64
(``bench/aot_cpu.py``).

The package is the network from its input tensor to decoded keypoints (as the ONNX export:
``(B, 3, H, W)`` float32 RGB in [0, 1] -> coords in input px, confidence; any batch size),
float32, CPU. It is checked against PyTorch on real frames before it is written (max
difference in original-frame px, refused above the tolerance). Beside it,
``model_cpu.pt2.json`` records what it was compiled from: the checkpoint's SHA-256 and the
torch version. :func:`load_compiled` uses a package only when both match the model being
loaded (a retrained model or another torch predicts eagerly, with a warning that says how to
compile again), and ``predict.aot=false`` turns it off. Networks with a temporal window
(``heatmap_context``) are not compiled: they predict through a feature stream.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from vidpose import __version__
from vidpose._atomic import atomic_path, atomic_write_text
from vidpose.errors import VidposeError

AOT_FILE = Path("export") / "model_cpu.pt2"
"""Where, in a model directory, the CPU package is written and looked for."""


@dataclass
class CompileResult:
    """What :func:`compile_model` wrote and measured (``torch_fps`` / ``compiled_fps``: the
    network alone on this CPU, the same batches)."""

    path: Path
    info_path: Path
    checkpoint: str
    frames_checked: int
    check_source: str
    max_abs_px: float
    max_abs_confidence: float
    compiled_fps: float
    torch_fps: float
    compile_seconds: float


def checkpoint_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
    from vidpose.data.geometry import input_to_orig
    from vidpose.export import _check_frames, _Exported, _inputs
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
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise VidposeError(
                f"{out}: not written: compiling ahead of time failed on this network "
                f"(model.backbone={model.cfg.model.backbone}, model.head={model.cfg.model.head}): "
                f"{type(exc).__name__}: {first}"
            ) from exc
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


def load_compiled(model_dir: Path, checkpoint: Path) -> Callable[[torch.Tensor], Any] | None:
    """The CPU package of ``model_dir`` when it was compiled from ``checkpoint`` by this torch;
    None when there is none, and None with a warning saying why when it cannot be used."""
    path = Path(model_dir) / AOT_FILE
    info_path = path.with_name(path.name + ".json")
    if not path.is_file() or not info_path.is_file():
        return None
    again = f"predicting without it (run `vidpose export {model_dir} --format aoti` again)"
    try:
        info = json.loads(info_path.read_text())
        compiled_from = info["checkpoint"]["sha256"]
        built_by = info["torch_version"]
    except Exception:  # damaged or foreign description
        warnings.warn(f"{info_path}: unreadable; {again}", stacklevel=3)
        return None
    if built_by != torch.__version__:
        warnings.warn(
            f"{path} was compiled by torch {built_by}, this is torch {torch.__version__}; {again}",
            stacklevel=3,
        )
        return None
    if compiled_from != checkpoint_digest(checkpoint):
        warnings.warn(f"{path} was compiled from another {checkpoint.name}; {again}", stacklevel=3)
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch._inductor.aoti_load_package(str(path))
    except Exception as exc:
        warnings.warn(
            f"{path}: cannot be loaded ({type(exc).__name__}: {exc}); {again}", stacklevel=3
        )
        return None
