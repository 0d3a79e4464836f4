"""How long the predicting thread is kept from running while videos' tables are written:
writer threads (one GIL with it) against writer processes (``run._Writers``).

    python bench/writer_stalls.py --model MODEL_DIR --table PREDICTIONS.csv \\
        [--frames 9940] [--videos 8] [--repeats 2] [--out bench/results/writer_stalls_cpu.json]

``--table`` is any prediction table of ``--model`` (its keypoints); it is tiled to ``--frames``
rows, and ``--videos`` copies are handed to the 4 writers at once, as when a round of videos
decoded together ends. Meanwhile a Python thread does a little work in a loop, standing for the
predicting thread; reported per mode: the seconds the writes took, the thread's loops per
second and its longest stall (the gap between two loops). Writer processes are warmed first
(started, their imports done), as they are after a batch's first video.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from vidpose.io import read_poses
from vidpose.predict.predictor import PredictStats
from vidpose.predict.run import Predictor, _Writers


def _tiled(poses, n: int):
    reps = -(-n // poses.n_frames)
    fields = {}
    for f in dataclasses.fields(poses):
        v = getattr(poses, f.name)
        if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == poses.n_frames:
            v = np.concatenate([v] * reps)[:n]
        fields[f.name] = v
    return dataclasses.replace(poses, **fields)


def _run(processes: bool, model: Path, poses, videos: int, out: Path) -> dict:
    writers = _Writers(processes, lambda _line: None)
    spec = Predictor(model, out).outputs()
    stats = PredictStats(poses.n_frames, 1.0, [])
    if processes:  # a batch's first video starts them; what is measured is the steady state
        done = threading.Event()
        writers.submit(spec, (Path("warm.mp4"), "warm", [poses], stats), lambda r: done.set())
        done.wait()
    gaps: list[float] = []
    stop = threading.Event()

    def spin() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            _ = [i * 2 for i in range(500)]  # Python work: it needs the GIL
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    thread = threading.Thread(target=spin)
    thread.start()
    time.sleep(0.5)
    gaps.clear()
    t0 = time.perf_counter()
    for i in range(videos):
        writers.submit(spec, (Path(f"v{i}.mp4"), f"v{i}", [poses], stats), lambda r: None)
    writers.close()
    seconds = time.perf_counter() - t0
    stop.set()
    thread.join()
    g = np.array(gaps)
    return {
        "writers": "processes" if processes else "threads",
        "write_seconds": round(seconds, 3),
        "loops_per_s": round(len(g) / float(g.sum()), 1),
        "longest_stall_ms": round(float(g.max()) * 1e3, 1),
        "stalls_over_5ms_s": round(float(g[g > 0.005].sum()), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--table", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=9940)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    poses = _tiled(read_poses(args.table), args.frames)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for processes in (False, True):
                out = Path(tmp) / f"{r}_{processes}"
                runs.append(_run(processes, args.model, poses, args.videos, out))
                print(json.dumps(runs[-1]), flush=True)
    result = {
        "benchmark": "writer_stalls",
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "frames": args.frames,
        "keypoints": len(poses.keypoints),
        "videos": args.videos,
        "runs": runs,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
