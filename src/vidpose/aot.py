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

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

AOT_FILE = Path("export") / "model_cpu.pt2"
"""Where, in a model directory, the CPU package is written and looked for."""


@dataclass
class CompileResult:
    """What :func:`vidpose.export.compile_model` wrote and measured (``torch_fps`` /
    ``compiled_fps``: the network alone on this CPU, the same batches)."""

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
