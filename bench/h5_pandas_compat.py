"""DeepLabCut .h5 tables across pandas 2 and 3, both directions.

    uv run python bench/h5_pandas_compat.py [--pandas2 "pandas<3"] [--out JSON]

DeepLabCut 3 pins ``pandas<3``; vidpose runs with pandas 3. This writes labels (string index)
and predictions (frame-number index) with vidpose, reads them with pandas 2 in a separate
environment (``uv run --no-project --with 'pandas<3' --with tables``), and the other way
round: pandas 2 writes DLC-style tables in both PyTables storages ("fixed" and "table"),
vidpose reads them. Each check compares every value.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from vidpose.io import read_poses, write_poses
from vidpose.io.poses import Poses

PANDAS2_SCRIPT = r"""
import json, sys
import numpy as np, pandas as pd
out = {"pandas": pd.__version__, "read": {}}
for name in ("labels", "predictions"):
    df = pd.read_hdf(sys.argv[1] + f"/{name}.h5", "df_with_missing")
    out["read"][name] = {
        "shape": list(df.shape),
        "index": [str(i) for i in df.index[:3]],
        "levels": [list(map(str, lv)) for lv in df.columns.levels],
        "values": np.nan_to_num(df.to_numpy(dtype=float), nan=-1.0).round(4).tolist(),
    }
try:
    pd.read_hdf(sys.argv[1] + "/pandas3_table.h5", "df_with_missing")
    out["pandas3_table_reads"] = "yes"
except Exception as exc:
    out["pandas3_table_reads"] = f"no: {type(exc).__name__}: {exc}"
cols = pd.MultiIndex.from_product(
    [["DLC_scorer"], ["nose", "tail"], ["x", "y", "likelihood"]],
    names=["scorer", "bodyparts", "coords"],
)
vals = np.arange(30, dtype=float).reshape(5, 6) / 7.0
vals[2, 0:2] = np.nan
df = pd.DataFrame(vals, columns=cols)
for storage in ("fixed", "table"):
    df.to_hdf(sys.argv[1] + f"/dlc_{storage}.h5", key="df_with_missing", mode="w", format=storage)
out["written"] = np.nan_to_num(vals, nan=-1.0).round(4).tolist()
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pandas2", default="pandas<3")
    ap.add_argument("--out", type=Path, default=Path("bench/results/h5_pandas_compat.json"))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    k = ["nose", "ear_left", "tail"]
    coords = np.round(rng.uniform(0, 400, (4, 3, 2)), 4)
    coords[1, 2] = np.nan
    labels = Poses(
        coords=coords,
        keypoints=k,
        frames=np.array([f"labeled-data/s1/img{i:03d}.png" for i in range(4)], dtype=object),
        scorer="me",
    )
    preds = Poses(
        coords=coords,
        keypoints=k,
        frames=np.arange(4),
        likelihood=np.round(rng.uniform(0, 1, (4, 3)), 5),
        scorer="vidpose",
    )
    result: dict = {"benchmark": "h5_pandas_compat", "vidpose_pandas": pd.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        write_poses(labels, Path(tmp) / "labels.h5")
        write_poses(preds, Path(tmp) / "predictions.h5")
        # what vidpose wrote before (PyTables "table" storage, pandas 3), for comparison
        cols = pd.MultiIndex.from_product([["s"], k, ["x", "y"]])
        pd.DataFrame(coords.reshape(4, -1), columns=cols, index=labels.frames).to_hdf(
            Path(tmp) / "pandas3_table.h5", key="df_with_missing", format="table"
        )
        proc = subprocess.run(
            [
                "uv",
                "run",
                "--no-project",
                "--python",
                sys.executable,
                "--with",
                args.pandas2,
                "--with",
                "tables",
                "python",
                "-c",
                PANDAS2_SCRIPT,
                tmp,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return 1
        other = json.loads(proc.stdout.strip().splitlines()[-1])
        result["other_pandas"] = other["pandas"]
        result["pandas3_table_storage_reads_in_pandas2"] = other["pandas3_table_reads"]
        expect_l = np.nan_to_num(coords.reshape(4, -1), nan=-1.0).round(4)
        got_l = np.asarray(other["read"]["labels"]["values"])
        expect_p = np.nan_to_num(
            np.concatenate([coords, preds.likelihood[..., None]], axis=2).reshape(4, -1), nan=-1.0
        ).round(4)
        got_p = np.asarray(other["read"]["predictions"]["values"])
        result["vidpose_to_pandas2"] = {
            "labels_equal": bool(np.array_equal(got_l, expect_l)),
            "labels_index": other["read"]["labels"]["index"],
            "predictions_equal": bool(np.array_equal(got_p, expect_p)),
        }
        written = np.asarray(other["written"])
        back = {}
        for storage in ("fixed", "table"):
            p = read_poses(Path(tmp) / f"dlc_{storage}.h5")
            mine = np.concatenate([p.coords, p.likelihood[..., None]], axis=2).reshape(5, -1)
            back[storage] = bool(np.array_equal(np.nan_to_num(mine, nan=-1.0).round(4), written))
        result["pandas2_to_vidpose"] = back
    ok = all(result["vidpose_to_pandas2"][k] for k in ("labels_equal", "predictions_equal"))
    ok = ok and all(back.values())
    result["all_equal"] = ok
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
