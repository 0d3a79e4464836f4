"""An ensemble video's end: its members' tables, metrics and smoothing, in one writer task or
split over the writer processes.

    python bench/writer_ensemble.py [--members 5] [--frames 9940] [--keypoints 17] [--repeats 3]
        [--out bench/results/writer_ensemble_cpu.json]

Synthetic members (one pose track plus noise, as trained members disagree) of one video. Two
ways, each from the moment the video's poses reach the writers to its result:
- ``one_task``: ``run.write_outputs`` in one writer process (every member's tables in turn,
  then the smoothing), as vidpose wrote an ensemble's video before;
- ``split``: ``run._Writers`` in processes, as ``vidpose predict`` writes it now: one task per
  member and one for the smoothing (from the poses in memory), all at once.
The writer processes are started and warm (their imports done) before the timing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from vidpose.io.poses import Poses
from vidpose.predict.predictor import PredictStats
from vidpose.predict.run import Outputs, _Writers, write_outputs

WARM = ("vidpose.io", "vidpose.predict.metrics", "vidpose.smooth")


def members_of(m: int, n: int, k: int, seed: int = 0) -> list[Poses]:
    rng = np.random.default_rng(seed)
    track = np.cumsum(rng.normal(0, 2, (n, k, 2)), axis=0) + 200
    names = [f"kp{i}" for i in range(k)]
    return [
        Poses(
            coords=track + rng.normal(0, 1.5, track.shape),
            likelihood=rng.uniform(0.5, 1, (n, k)),
            keypoints=names,
            frames=np.arange(n),
            scorer="vidpose",
        )
        for _ in range(m)
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--frames", type=int, default=9940)
    ap.add_argument("--keypoints", type=int, default=17)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    poses = members_of(args.members, args.frames, args.keypoints)
    stats = PredictStats(args.frames, 1.0, [])
    members = tuple(SimpleNamespace(name=f"seed{i}", path=None) for i in range(args.members))
    runs: dict[str, list[float]] = {"one_task": [], "split": []}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Outputs(Path(tmp), members, True, ("csv",), False)

        def warm_writers() -> _Writers:
            w = _Writers(True, lambda _m: None, warm=WARM)
            for f in w.warming:
                f.result()
            w.procs.submit(write_outputs, spec, Path("w.mp4"), "w", poses, stats).result()
            return w

        writers = warm_writers()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res, _ = writers.procs.submit(
                write_outputs, spec, Path("v.mp4"), "a", poses, stats
            ).result()
            runs["one_task"].append(time.perf_counter() - t0)
            assert res.status == "ok", res.reason
            done: list = []
            t0 = time.perf_counter()
            writers.submit(spec, (Path("v.mp4"), "b", poses, stats), done.append)
            writers.close()  # waits for the chain
            runs["split"].append(time.perf_counter() - t0)
            assert done and done[0].status == "ok", done
            writers = warm_writers()  # closed: a new pool, warm
        writers.close()
    out = {
        "benchmark": "writer_ensemble",
        "cpus": os.cpu_count(),
        "members": args.members,
        "frames": args.frames,
        "keypoints": args.keypoints,
        "seconds": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "median_seconds": {k: round(float(np.median(v)), 3) for k, v in runs.items()},
    }
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
