"""A sweep's summary page: ``SWEEP_DIR/summary.html``, self-contained like ``report.html``.

The ranked table of ``summary.csv`` (:mod:`vidpose.training.sweep`), the error of every trial
and, per swept key, the error against the key's value; failed trials with their error and log.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vidpose.training.sweep import (
    SUMMARY_HTML,
    TRIAL_LOG,
    rank_metric,
    read_summary,
    read_sweep,
)
from vidpose.viz import plots
from vidpose.viz.report import Figure, Section, write_report

WHAT = {
    "cv_pixel_error_mean": "cross-validated pixel error (mean over folds of each fold's "
    "held-out frames)",
    "val_pixel_error_mean": "validation pixel error (mean over validation frames)",
    "test_pixel_error_mean": "test pixel error (no trial has validation frames)",
}


def _px(v: float) -> str:
    return "–" if not np.isfinite(v) else f"{v:.2f} px"


def write_sweep_report(sweep_dir: str | Path) -> Path:
    """Write ``summary.html`` of a sweep from its ``sweep.json`` and ``summary.csv``; returns
    its path.

    Raises:
        ModelDirError: ``sweep_dir`` is no sweep directory or has no summary yet.
    """
    sweep_dir = Path(sweep_dir)
    spec = read_sweep(sweep_dir)
    table = read_summary(sweep_dir)
    rank_by = rank_metric(table)
    keys = [a.key for a in spec.axes]
    done = table[table["status"] == "done"]
    failed = table[table["status"] != "done"]
    errors = table[rank_by].to_numpy(dtype=float)

    ranked = Section("Trials, best first", "trials")
    ranked.notes.append(
        f"Ranked by {WHAT.get(rank_by, rank_by)}. Swept: "
        + ("; ".join(f"{a.key} = {', '.join(a.values)}" for a in spec.axes) or "nothing")
        + (f". Each trial is a {spec.folds}-fold cross-validation." if spec.folds else ".")
    )
    if np.isfinite(errors).any():
        best = table.iloc[int(np.nanargmin(errors))]
        label = " ".join(f"{k}={best[k]}" for k in keys) or best["trial"]
        ranked.kpis.append((_px(float(best[rank_by])), f"best: {best['trial']} ({label})"))
    ranked.kpis.append((f"{len(done)} of {len(table)}", "trials finished"))
    if len(failed):
        ranked.kpis.append((str(len(failed)), "trials failed"))
    shown = table.drop(columns=["error", "status"]).copy()
    shown["rank"] = [str(int(r)) if pd.notna(r) else "–" for r in table["rank"]]
    if "steps" in shown:
        shown["steps"] = [str(int(s)) if pd.notna(s) else "–" for s in shown["steps"]]
    shown.insert(len(shown.columns) - 1, "status", table["status"])
    ranked.items.append(shown)

    sections = [ranked]
    if np.isfinite(errors).any():
        sd = table["cv_pixel_error_sd"].to_numpy(dtype=float) if spec.folds else None
        fig = plots.plot_sweep_errors(
            list(table["trial"]),
            errors,
            sd,
            {k: list(table[k]) for k in keys},
            f"{rank_by} (px)",
            order={a.key: a.values for a in spec.axes},
        )
        caption = (
            "Left: each trial's error, best first"
            + (" (bars ± sd over folds)" if spec.folds else "")
            + ". Right: per swept key, every trial's error at its value of the key; the orange "
            "line joins the best trial per value. A key whose best line is flat hardly matters "
            "within the swept range."
        )
        sections.append(
            Section(
                "Error per trial",
                "errors",
                items=[Figure(plots.figure_png(fig), caption, alt="sweep errors")],
            )
        )
    if len(failed):
        rows = failed[["trial", *keys, "error"]].copy()
        rows["log"] = [
            str(sweep_dir / t / TRIAL_LOG) if (sweep_dir / t / TRIAL_LOG).exists() else "–"
            for t in failed["trial"]
        ]
        sections.append(
            Section(
                "Failed trials",
                "failed",
                notes=[
                    "Run the same command again to retry them: finished trials are kept and "
                    "interrupted ones resumed."
                ],
                items=[rows],
            )
        )
    subtitle = [
        f"project {spec.project}",
        f"{len(table)} trials in {sweep_dir.resolve()}",
        "overrides: " + (" ".join(spec.overrides) or "(none)"),
    ]
    return write_report(
        sweep_dir / SUMMARY_HTML, f"vidpose sweep — {sweep_dir.name}", subtitle, sections
    )
