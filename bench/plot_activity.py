"""Activity curves of the unsupervised losses of one run of a semisupervised_shift result file.

    uv run python bench/plot_activity.py RESULT.json --condition "semi[all]" --seed 0 --out FIG.png

Left: the share of each loss's terms whose hinge was active, per epoch; right: its weighted size
relative to the supervised loss (vidpose.viz.plots.plot_loss_activity, as in report.html).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vidpose.viz.plots import plot_loss_activity


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("result", type=Path)
    ap.add_argument("--condition", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    runs = json.loads(args.result.read_text())["runs"]
    run = next(
        (r for r in runs if r["condition"] == args.condition and r["seed"] == args.seed), None
    )
    if run is None or not run.get("loss_activity"):
        names = sorted({r["condition"] for r in runs if r.get("loss_activity")})
        raise SystemExit(f"no run {args.condition!r} seed {args.seed} with losses; have {names}")
    fig = plot_loss_activity(run["loss_activity"])
    fig.suptitle(f"{args.result.name}: {args.condition}, seed {args.seed}", fontsize="small")
    fig.savefig(args.out, dpi=110)
    for name, s in run["loss_activity"].items():
        first = s["per_epoch"][:10]
        early = sum(e["active_fraction"] for e in first) / max(len(first), 1)
        print(
            f"{name}: active {100 * s['active_fraction']:.1f}% of terms over the run, "
            f"{100 * early:.1f}% in the first {len(first)} epochs; relative size "
            f"{s['relative_size']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
