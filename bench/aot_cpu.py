"""CPU prediction with the network compiled ahead of time (``vidpose export --format aoti``)
against the eager network: the network alone, and a video end to end (decode included).

    python bench/aot_cpu.py MODEL_DIR VIDEO [--out bench/results/aot_cpu.json]

Compiles MODEL_DIR's network first when it has no package (the time is reported). The network
alone: ``--seconds`` of batches of random frames at the model's input size, per batch size;
end to end: ``PoseModel.predict_videos`` on VIDEO, ``--repeats`` times each way, alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from vidpose.aot import AOT_FILE
from vidpose.export import compile_model
from vidpose.predict import load_model


def network_fps(model, batch: int, seconds: float) -> float:
    x = torch.rand(batch, 3, *model.input_hw)
    with torch.inference_mode():
        run = model.aot if model.aot is not None else model.network
        run(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            run(x)
            n += batch
    return n / (time.perf_counter() - t0)


def video_fps(model, video: Path) -> tuple[float, object]:
    got = {}
    t0 = time.perf_counter()
    model.predict_videos([video], on_done=lambda p, r, s: got.setdefault("r", r))
    wall = time.perf_counter() - t0
    poses = got["r"][0] if isinstance(got["r"], list) else got["r"]
    return poses.n_frames / wall, poses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("video", type=Path)
    ap.add_argument("--batches", default="16,64")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out: dict = {
        "benchmark": "aot_cpu",
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": str(args.model),
        "video": args.video.name,
    }
    if not (args.model / AOT_FILE).is_file():
        res = compile_model(args.model)
        out["compile_seconds"] = res.compile_seconds
        out["parity_max_abs_px"] = res.max_abs_px
    models = {
        "eager": load_model(args.model, device="cpu", aot=False),
        "aot": load_model(args.model, device="cpu", aot=True),
    }
    assert models["aot"].aot is not None, "the package was not loaded"
    out["network_fps"] = {
        f"{name}_b{b}": round(network_fps(m, int(b), args.seconds), 1)
        for b in args.batches.split(",")
        for name, m in models.items()
    }
    print("network", out["network_fps"], flush=True)
    rows: dict[str, list[float]] = {"eager": [], "aot": []}
    poses = {}
    for _ in range(args.repeats):
        for name, m in models.items():
            fps, poses[name] = video_fps(m, args.video)
            rows[name].append(round(fps, 1))
    out["video_fps"] = rows
    out["video_max_abs_px"] = float(np.nanmax(np.abs(poses["eager"].coords - poses["aot"].coords)))
    print("video", rows, "max |aot - eager| px", out["video_max_abs_px"], flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
