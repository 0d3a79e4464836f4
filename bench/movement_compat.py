"""Which tables vidpose writes load in movement (the field's pose-analysis package).

    uv run python bench/movement_compat.py [--movement movement] [--out JSON]

Writes a prediction table and a 3-member ensemble smoothed with ``run_smooth`` (its table and
its ``_ensemble`` statistics table), then loads each with movement in a separate environment
(``uv run --no-project --with movement``) as Lightning Pose and as DeepLabCut files, and
compares the positions movement reads with vidpose's. Also hands movement the dataset
``vidpose.io.movement.to_movement`` builds, which movement saves (validating it) and reads
back.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np

from peer_env import run_in_env
from vidpose.io import write_poses
from vidpose.io.movement import to_movement
from vidpose.io.poses import Poses
from vidpose.smooth.run import run_smooth

READER = r"""
import json, sys
import numpy as np
import movement
from movement.io import load_poses
out = {"movement": movement.__version__, "tables": {}}
for name in sys.argv[2:]:
    row = {}
    for software in ("LightningPose", "DeepLabCut"):
        try:
            ds = load_poses.from_file(sys.argv[1] + "/" + name, source_software=software, fps=30)
            pos = ds.position.values  # (time, space, keypoints, individuals)
            pos = np.nan_to_num(pos[..., 0], nan=-1).round(3).tolist()
            row[software] = {"ok": True, "position": pos}
        except Exception as exc:
            row[software] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
    out["tables"][name] = row
import pickle
from movement.io import save_poses
ds = pickle.loads(open(sys.argv[1] + "/dataset.pkl", "rb").read())
try:
    save_poses.to_lp_file(ds, sys.argv[1] + "/from_dataset.csv")  # validates the dataset
    written = sys.argv[1] + "/from_dataset_individual_0.csv"  # movement names it per individual
    back = load_poses.from_file(written, source_software="LightningPose", fps=ds.attrs["fps"])
    same = np.allclose(back.position.values, ds.position.values, equal_nan=True, atol=1e-6)
    out["dataset"] = {"accepted": True, "round_trip_equal": bool(same)}
except Exception as exc:
    out["dataset"] = {"accepted": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--movement", default="movement")
    ap.add_argument("--out", type=Path, default=Path("bench/results/movement_compat.json"))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    n, k = 60, 3
    truth = np.cumsum(rng.normal(0, 1, (n, k, 2)), axis=0) + 100
    result: dict = {"benchmark": "movement_compat"}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(3):
            p = Poses(
                coords=np.round(truth + rng.normal(0, 1, (n, k, 2)), 4),
                keypoints=["nose", "ear", "tail"],
                frames=np.arange(n),
                likelihood=np.full((n, k), 0.9),
                scorer="vidpose",
            )
            paths.append(Path(tmp) / f"member{i}.csv")
            write_poses(p, paths[-1])
        smoothed = run_smooth(paths, Path(tmp) / "smoothed.csv")
        # vidpose's own movement dataset (Poses -> xarray), handed to movement to validate
        (Path(tmp) / "dataset.pkl").write_bytes(pickle.dumps(to_movement(smoothed, fps=30.0)))
        names = ["member0.csv", "smoothed.csv", "smoothed_ensemble.csv"]
        got = run_in_env(args.movement, READER, tmp, *names)
        if got is None:
            return 1
        result["movement"] = got["movement"]
        result["to_movement_dataset"] = got["dataset"]
        ref = {"smoothed.csv": smoothed.coords}
        for name, row in got["tables"].items():
            entry = {}
            for software, r in row.items():
                entry[software] = {"loads": r["ok"]}
                if not r["ok"]:
                    entry[software]["error"] = r["error"]
                if r["ok"] and name in ref:
                    pos = np.asarray(r["position"])  # (time, space, keypoints)
                    mine = np.nan_to_num(ref[name].transpose(0, 2, 1), nan=-1).round(3)
                    entry[software]["positions_equal"] = bool(np.allclose(pos, mine, atol=1e-3))
            result[name] = entry
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
