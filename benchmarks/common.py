"""Shared helpers: where results go, JSON writing, percentiles, optional plots."""

from __future__ import annotations

import json
import math
import pathlib
import platform
import time
from collections.abc import Sequence
from typing import Any

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def out_dir() -> pathlib.Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "min": round(min(values), 4),
        "median": round(percentile(values, 50), 4),
        "p90": round(percentile(values, 90), 4),
        "p99": round(percentile(values, 99), 4),
        "max": round(max(values), 4),
    }


def write_json(name: str, payload: Any, directory: pathlib.Path | None = None) -> pathlib.Path:
    path = (directory or out_dir()) / f"{name}.json"
    meta = {"machine": platform.machine(), "python": platform.python_version(), "when": time.time()}
    path.write_text(json.dumps({"meta": meta, "results": payload}, indent=2, sort_keys=True))
    print(f"wrote {path}")
    return path


def histogram_png(
    name: str, series: dict[str, Sequence[float]], xlabel: str, directory: pathlib.Path
) -> None:
    """A histogram per series, if matplotlib is installed (it is in `nox -s bench`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values in series.items():
        if values:
            ax.hist(values, bins=40, alpha=0.6, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.legend()
    fig.tight_layout()
    path = directory / f"{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


CdfPanel = tuple[str, dict[str, Sequence[float]], dict[str, dict[float, float]]]
"""(x label, curves: label -> values, points: label -> {quantile: value})."""


def cdf_png(name: str, title: str, panels: Sequence[CdfPanel], directory: pathlib.Path) -> None:
    """Side-by-side cumulative distributions, if matplotlib is installed: each curve is a
    whole distribution; each point set is a peer's published quantiles (a peer that reports
    only quantiles is drawn as the points of its CDF)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (xlabel, curves, points) in zip(axes[0], panels, strict=True):
        for label, values in curves.items():
            ordered = sorted(values)
            if ordered:
                fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
                ax.step(ordered, fractions, where="post", label=f"{label} (n={len(ordered)})")
        for label, quantiles in points.items():
            if quantiles:
                qs = sorted(quantiles)
                ax.plot([quantiles[q] for q in qs], qs, "x--", label=f"{label} (quantiles)")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction")
        ax.set_ylim(0.0, 1.02)
        ax.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    path = directory / f"{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
