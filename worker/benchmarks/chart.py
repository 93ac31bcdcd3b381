"""The throughput benchmark's chart: warren-worker beside the consumers it is measured against.

`throughput.py --chart PNG` saves a run's figures as JSON beside the PNG and draws it;
`python chart.py RUN.json` draws a saved run again. matplotlib is a benchmark-only dependency
(worker/benchmarks/requirements.txt): the worker package never imports it.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

# The goals the benchmark is held to (docs/benchmarks.md): each figure is drawn as a share of its goal.
GOALS: Mapping[str, tuple[str, float]] = {
    "noop_vs_tight": ("no-op vs. tight consumer", 0.8),
    "noop_vs_tutorial": ("no-op vs. tutorial worker", 5.0),
    "io_msgs_per_s": ("50 ms handler, msg/s", 500.0),
    "publish_msgs_per_s": ("publisher, msg/s", 10_000.0),
}
CONSUMERS = ("tight pika consumer", "tutorial worker", "warren-worker")


class Run(TypedDict):
    """One benchmark run as throughput.py saves it."""

    date: str
    commit: str
    machine: str
    rounds: list[list[float]]  # per round: tight, tutorial, warren-worker msg/s
    result: dict[str, float]  # the RESULT line's figures, keyed as in GOALS


def median_rates(run: Run) -> dict[str, float]:
    """Each consumer's median no-op rate over the run's rounds."""
    return {name: statistics.median(r[i] for r in run["rounds"]) for i, name in enumerate(CONSUMERS)}


def goal_shares(run: Run) -> list[tuple[str, float]]:
    """(label, measured / goal) for every goal, in GOALS order; 1.0 means exactly at the goal."""
    return [(label, run["result"][key] / goal) for key, (label, goal) in GOALS.items()]


def draw(run: Run, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, (rates_ax, goals_ax) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    rounds: Sequence[Sequence[float]] = run["rounds"]
    width = 0.8 / len(CONSUMERS)
    for i, name in enumerate(CONSUMERS):
        xs = [r + (i - 1) * width for r in range(len(rounds))]
        rates_ax.bar(xs, [round_[i] for round_ in rounds], width, label=name)
    rates_ax.set_xticks(range(len(rounds)), [f"round {r + 1}" for r in range(len(rounds))])
    rates_ax.set_ylabel("messages/s (no-op handler)")
    rates_ax.set_title("No-op consumers, round by round")
    rates_ax.set_ylim(0, max(max(r) for r in rounds) * 1.25)  # room for the legend above the bars
    rates_ax.legend(loc="upper left", ncol=len(CONSUMERS), fontsize="small")
    rates_ax.grid(axis="y", alpha=0.3)

    shares = goal_shares(run)
    labels = [label for label, _ in shares]
    values = [share * 100 for _, share in shares]
    colours = ["tab:green" if v >= 100 else "tab:red" for v in values]
    goals_ax.barh(labels, values, color=colours)
    goals_ax.axvline(100, color="black", linewidth=1)
    for y, v in enumerate(values):
        goals_ax.text(v, y, f" {v:.0f} %", va="center", fontsize="small")
    goals_ax.set_xlabel("measured, % of goal (line = goal)")
    goals_ax.set_title("Goals (medians of the run)")
    goals_ax.invert_yaxis()
    goals_ax.set_xlim(0, max([*values, 100]) * 1.25)

    fig.suptitle(f"Warren throughput, {run['date']}, {run['commit']}, {run['machine']}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def save_and_draw(run: Run, png: Path) -> None:
    """Keep the run's figures beside the chart, so it can be drawn again without re-running."""
    png.parent.mkdir(parents=True, exist_ok=True)
    png.with_suffix(".json").write_text(json.dumps(run, indent=2) + "\n")
    draw(run, png)


def load(path: Path) -> Run:
    data: Any = json.loads(path.read_text())
    return Run(
        date=str(data["date"]),
        commit=str(data["commit"]),
        machine=str(data["machine"]),
        rounds=[[float(v) for v in r] for r in data["rounds"]],
        result={k: float(v) for k, v in data["result"].items()},
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: chart.py RUN.json   (draws RUN.png beside it)")
    saved = Path(sys.argv[1])
    draw(load(saved), saved.with_suffix(".png"))
