"""What a new expert will do to a robot's routing, for a person to read before shipping it: report.md
(figures, the refusal if any) and routing.png (where each scenario's held-out requests go, before and
after)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _matrix(table: dict[str, dict[str, int]], rows: list[str], columns: list[str]) -> np.ndarray:
    counts = np.array([[table.get(r, {}).get(c, 0) for c in columns] for r in rows], dtype=float)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def plot_routing(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(result["routing"]["after"])
    columns = sorted({c for t in result["routing"].values() for counts in t.values() for c in counts})
    fig, axes = plt.subplots(1, 2, figsize=(2 * (2.5 + 0.6 * len(columns)), 1.5 + 0.6 * len(rows)))
    for ax, when in zip(axes, ("before", "after")):
        matrix = _matrix(result["routing"][when], rows, columns)
        ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        for i in range(len(rows)):
            for j in range(len(columns)):
                ax.text(j, i, f"{matrix[i, j]:.0%}", ha="center", va="center", fontsize=8)
        ax.set_title(f"{when}: requests (rows) routed to (columns)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(result: dict, out: Path) -> Path:
    png = plot_routing(result, out / "routing.png")
    accuracy = result["deployed_routing_accuracy"]

    def pct(value) -> str:
        return (
            "n/a (no requests of the deployed scenarios: give --deployed-corpus)" if value is None else f"{value:.1%}"
        )

    lines = [
        f"# New expert: {result['scenario']}",
        "",
        f"Trained on {result['train_clips']} clips next to the robot's deployed experts "
        f"({', '.join(result['deployed']) or 'none'}) in {result['training']['seconds']} s "
        f"({result['training']['steps']} steps, final loss {result['training']['final_loss']:.3f}).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| held-out requests of {result['scenario']} routed to it | {result['new']['routed_to_new']:.1%} of "
        f"{result['test_requests']} |",
        f"| deployed scenarios routed to their own expert, before | {pct(accuracy['before'])} |",
        f"| ... after | {pct(accuracy['after'])} |",
    ]
    scores = result.get("scores", {})
    for key, before in scores.get("before", {}).items():
        lines.append(f"| {result['scenario']}: {key}, before -> after | {before:.3f} -> {scores['after'][key]:.3f} |")
    lines += [
        f"| {d}'s requests now routed to the new expert | {s:.1%} |" for d, s in result["taken_from_deployed"].items()
    ]
    reach = result.get("tokenizer_reach") or {}
    if reach.get("new_mpjpe_mm") is not None:
        known = reach.get("deployed_mpjpe_mm")
        against = f" ({known} mm on the deployed scenarios' motions: {reach['ratio']}x)" if known else ""
        lines.append(f"| motion tokenizer joint error on the held-out clips | {reach['new_mpjpe_mm']} mm{against} |")
    lines += ["", f"![routing before and after]({png.name})", ""]
    if reach.get("warning"):
        lines += [f"**Warning:** {reach['warning']}.", ""]
    if result.get("refused"):
        lines += [f"**Refused:** {result['refusal']}. No bundle was written.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
