"""Whether movement (the field's pose-analysis package) reads vidpose's NWB files, and back.

    uv run python bench/nwb_compat.py [--movement movement] [--out JSON]

Writes three NWB files with ``write_poses``: predictions of frames 0..59 (rate-timed), labels of
the same frames (no confidence) and predictions of every frame but a few (timestamps). Loads
each with ``movement.io.load_poses.from_nwb_file`` in a separate environment (``uv run
--no-project --with movement``) and compares positions, confidences, keypoint names and fps
with vidpose's. movement then saves its dataset of the first file with
``save_poses.to_nwb_file``; pynwb's validator checks that file and vidpose reads it back.

movement 0.15 lists keypoints sorted by name and builds its time axis as row / fps (it reads
the rate, not the timestamps), so the file with gaps loads with the right values at the wrong
times (``time_equal_frames_over_fps`` false).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from peer_env import run_in_env
from vidpose.io import read_poses, write_poses
from vidpose.io.poses import Poses

READER = r"""
import json, sys
import numpy as np
import movement, pynwb
from movement.io import load_poses, save_poses
out = {"movement": movement.__version__, "pynwb": pynwb.__version__, "files": {}}
for name in sys.argv[2:]:
    try:
        ds = load_poses.from_nwb_file(sys.argv[1] + "/" + name)
        out["files"][name] = {
            "ok": True,
            "keypoints": [str(k) for k in ds.keypoints.values],
            "individuals": [str(i) for i in ds.individuals.values],
            "fps": ds.attrs.get("fps"),
            "source_software": ds.attrs.get("source_software"),
            "time": ds.time.values.tolist(),
            # (time, space, keypoints) and (time, keypoints); NaN as None
            "position": np.where(np.isnan(p := ds.position.values[..., 0]), None, p).tolist(),
            "confidence": np.where(np.isnan(c := ds.confidence.values[..., 0]), None, c).tolist(),
        }
    except Exception as exc:
        out["files"][name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
ds = load_poses.from_nwb_file(sys.argv[1] + "/" + sys.argv[2])
nwbfile = save_poses.to_nwb_file(ds)
path = sys.argv[1] + "/from_movement.nwb"
with pynwb.NWBHDF5IO(path, "w") as io:
    io.write(nwbfile)
out["movement_written_validation_errors"] = [str(e) for e in pynwb.validate(path=path)]
print(json.dumps(out))
"""


def _tables() -> dict[str, Poses]:
    rng = np.random.default_rng(0)
    n, keypoints = 60, ["snout", "left ear", "tail_base"]  # not sorted, one with a space
    coords = np.cumsum(rng.normal(0, 1, (n, 3, 2)), axis=0) + 100
    coords[7, 1] = np.nan
    likelihood = rng.uniform(0, 1, (n, 3))
    likelihood[7, 1] = np.nan
    meta = {"fps": 30.0, "video": "sessions/mouse1.mp4", "skeleton": [("snout", "left ear")]}
    preds = Poses(coords, keypoints, np.arange(n), likelihood, scorer="vidpose_model", **meta)
    labels = Poses(coords, keypoints, np.arange(n), scorer="annotator", **meta)
    keep = np.setdiff1d(np.arange(n), [10, 11, 30])
    return {
        "predictions.nwb": preds,
        "labels.nwb": labels,
        "predictions_with_gaps.nwb": preds.select_frames(keep),
    }


def _nan(values) -> np.ndarray:
    return np.array(values, dtype=float)  # None -> NaN


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--movement", default="movement")
    ap.add_argument("--out", type=Path, default=Path("bench/results/nwb_compat.json"))
    args = ap.parse_args(argv)
    tables = _tables()
    result: dict = {"benchmark": "nwb_compat"}
    with tempfile.TemporaryDirectory() as tmp:
        for name, poses in tables.items():
            write_poses(poses, Path(tmp) / name)
        got = run_in_env(args.movement, READER, tmp, *tables)
        if got is None:
            return 1
        result["movement"], result["pynwb"] = got["movement"], got["pynwb"]
        for name, row in got["files"].items():
            mine = tables[name]
            entry: dict = {"loads": row["ok"]}
            if not row["ok"]:
                entry["error"] = row["error"]
                result[name] = entry
                continue
            order = [mine.keypoints.index(k) for k in row["keypoints"]]
            position = _nan(row["position"])  # (time, space, keypoints)
            confidence = _nan(row["confidence"])
            entry.update(
                keypoints_same_set=sorted(row["keypoints"]) == sorted(mine.keypoints),
                movement_keypoint_order=row["keypoints"],
                positions_equal=bool(
                    np.array_equal(
                        position, mine.coords[:, order].transpose(0, 2, 1), equal_nan=True
                    )
                ),
                confidence_equal=bool(
                    np.array_equal(confidence, mine.likelihood[:, order], equal_nan=True)
                ),
                fps=row["fps"],
                fps_equal=row["fps"] == mine.fps,
                time_equal_frames_over_fps=bool(
                    np.allclose(row["time"], mine.frames / mine.fps, rtol=0, atol=1e-9)
                ),
                individuals=row["individuals"],
                source_software=row["source_software"],
            )
            result[name] = entry
        back_path = Path(tmp) / "from_movement.nwb"
        back = read_poses(back_path)
        first = tables["predictions.nwb"]
        order = [back.keypoints.index(k) for k in first.keypoints]
        result["movement_written_nwb"] = {
            "pynwb_validation_errors": got["movement_written_validation_errors"],
            "vidpose_reads_it": True,
            "keypoints": back.keypoints,
            "fps": back.fps,
            "frames_equal": bool(np.array_equal(back.frames, first.frames)),
            "positions_equal": bool(
                np.array_equal(back.coords[:, order], first.coords, equal_nan=True)
            ),
            "confidence_equal": bool(
                np.array_equal(back.likelihood[:, order], first.likelihood, equal_nan=True)
            ),
        }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
