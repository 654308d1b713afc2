"""The forgetting report: score matrices, the papers' summary figures, a Table-2 style comparison and
heatmaps, from the run states the trainer writes (OUT/run.json).

Matrix r[i][j] = a figure of task j after training task i (tasks in the run's order; above the diagonal:
tasks not trained yet). After the last task, with the ES-MoE definitions (training/evaluation/metrics.py):
AF = mean FID, AR = mean T2M R-Precision top-1, AD = mean Diversity, AMM = mean MultiModality, AWF = mean
emotion F1 of the generated motions, FR = forgetting rate of R-Precision top-1, BWT / FWT = GEM's
backward / forward transfer of R-Precision top-1 (FWT against the base model before any task).
R-Precision-based figures are in points (x100), as ES-MoE reports them; AWF stays a fraction, as there.
Every figure is computed per task order and then averaged over the orders (ES-MoE: 3 orders).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from motion_agent.experts.expert_set import BASE
from training.continual.adapters import adapter_name
from training.evaluation import metrics

POINTS = 100.0  # R-Precision as points
MATRICES = {  # report key -> per-task score the trainer records
    "matrix_t2m_r_precision_top1": "t2m_r_precision_top1",
    "matrix_t2m_fid": "t2m_fid",
    "matrix_m2t_bleu4": "m2t_bleu4",
    "matrix_m2t_r_precision_top3": "m2t_r_precision_top3",
    "matrix_t2m_diversity": "t2m_diversity",
    "matrix_t2m_multimodality": "t2m_multimodality",
    "matrix_t2m_emotion_f1": "t2m_emotion_f1",
    "matrix_t2m_loss": "t2m_loss",
    "matrix_m2t_loss": "m2t_loss",
}
HEATMAPS = ("matrix_t2m_r_precision_top1", "matrix_t2m_fid", "matrix_m2t_bleu4", "matrix_m2t_r_precision_top3")
# Table 2 columns: (key, header, format); arrows say which way is better.
TABLE = (
    ("AF", "AF ↓", "{:.3f}"),
    ("AR", "AR ↑", "{:.2f}"),
    ("AD", "AD ↑", "{:.3f}"),
    ("AMM", "AMM ↑", "{:.3f}"),
    ("AWF", "AWF ↑", "{:.3f}"),
    ("FR", "FR ↓", "{:.2f}"),
    ("BWT", "BWT ↑", "{:.2f}"),
    ("FWT", "FWT ↑", "{:.2f}"),
    ("M2T_BLEU4", "M2T BLEU-4 ↑", "{:.3f}"),
    ("FR_M2T_BLEU4", "FR BLEU-4 ↓", "{:.2f}"),
    ("FR_T2M_LOSS", "FR T2M loss ↓", "{:.3f}"),
    ("routing_accuracy", "routing ↑", "{:.3f}"),
    ("unknown_auroc", "unknown AUROC ↑", "{:.3f}"),
    ("unknown_rate", "unknown rate ↑", "{:.3f}"),
    ("train_seconds", "train s", "{:.0f}"),
)


def score_matrix(state: dict, figure: str) -> np.ndarray:
    """(T, T) matrix of one recorded figure; NaN where a row is missing (an unfinished run) or the
    figure was not recorded (e.g. emotion F1 without emotion labels)."""
    tasks = state["tasks"]
    matrix = np.full((len(tasks), len(tasks)), np.nan)
    for i, step in enumerate(state["steps"]):
        for j, task in enumerate(tasks):
            matrix[i, j] = step["scores"][task].get(figure, np.nan)
    return matrix


def baseline_vector(state: dict, figure: str) -> np.ndarray:
    return np.array([state["baseline"][task].get(figure, np.nan) for task in state["tasks"]])


def _or_nan(function, *args) -> float:
    """A continual figure, or NaN where it is undefined (one task: no forgetting, no transfer)."""
    try:
        return float(function(*args))
    except ValueError:
        return math.nan


def run_figures(state: dict) -> dict:
    """The summary figures and matrices of one finished run (one task order)."""
    m = {key: score_matrix(state, figure) for key, figure in MATRICES.items()}
    r1 = m["matrix_t2m_r_precision_top1"]
    figures = {
        "AF": metrics.average_after_last(m["matrix_t2m_fid"]),
        "AR": POINTS * metrics.average_after_last(r1),
        "AD": metrics.average_after_last(m["matrix_t2m_diversity"]),
        "AMM": metrics.average_after_last(m["matrix_t2m_multimodality"]),
        "AWF": metrics.average_after_last(m["matrix_t2m_emotion_f1"]),
        "FR": POINTS * _or_nan(metrics.forgetting_rate, r1),
        "BWT": POINTS * _or_nan(metrics.backward_transfer, r1),
        "FWT": POINTS * _or_nan(metrics.forward_transfer, r1, baseline_vector(state, "t2m_r_precision_top1")),
        "M2T_BLEU4": metrics.average_after_last(m["matrix_m2t_bleu4"]),
        "FR_M2T_BLEU4": POINTS * _or_nan(metrics.forgetting_rate, m["matrix_m2t_bleu4"]),
        "FR_T2M_LOSS": _or_nan(metrics.forgetting_rate, -m["matrix_t2m_loss"]),  # nats; lower loss is better
        "FR_M2T_LOSS": _or_nan(metrics.forgetting_rate, -m["matrix_m2t_loss"]),
        "train_seconds": float(sum(step["train"]["seconds"] for step in state["steps"])),
    }
    routed = [step["scores"][t].get("routing_accuracy") for step in state["steps"][-1:] for t in state["tasks"]]
    if routed and all(a is not None for a in routed):
        figures["routing_accuracy"] = float(np.mean(routed))
        figures |= routing_figures(state)
    aurocs = [step["unknown_auroc"] for step in state["steps"] if "unknown_auroc" in step]
    if aurocs:  # the tasks still to come and the held-out scenarios are the unknown ones
        figures["unknown_auroc"] = float(np.mean(aurocs))
    return {**figures, **{key: value.tolist() for key, value in m.items()}}


def routing_figures(state: dict) -> dict:
    """A routed run's confusion matrix after the last task (row: the requests of a task; column: the
    expert they went to, "unknown" last) and `unknown_rate`: the share of requests of tasks not trained
    yet that no expert accepted, over every step before the last (the scenarios held out so far), and of
    the scenarios held out of the whole run after every step."""
    tasks, last = state["tasks"], state["steps"][-1]["scores"]
    experts = [adapter_name(t) for t in tasks]
    confusion = [[last[t].get("routed_to", {}).get(name, 0.0) for name in experts + [BASE]] for t in tasks]
    held_out = [
        step["scores"][t]["routed_unknown"]
        for i, step in enumerate(state["steps"])
        for t in tasks[i + 1 :]
        if "routed_unknown" in step["scores"][t]
    ]
    held_out += [share for step in state["steps"] for share in step.get("held_out_unknown", {}).values()]
    return {
        "routing_confusion": confusion,
        "routing_confusion_columns": [*tasks, "unknown"],
        "unknown_rate": float(np.mean(held_out)) if held_out else math.nan,
    }


def method_summary(states: list[dict]) -> dict:
    """One method over several task orders: every figure averaged over the orders; the matrices are
    those of the first order (their columns follow its task order), each order's kept under `per_order`."""
    unfinished = [s["method"] for s in states if len(s["steps"]) != len(s["tasks"])]
    if unfinished:
        raise ValueError(f"a {unfinished[0]} run is unfinished; finish it (run the same command again) first")
    runs = [run_figures(state) for state in states]
    scalar = [k for k, v in runs[0].items() if not isinstance(v, list)]
    summary = {k: float(np.mean([run[k] for run in runs])) for k in scalar}
    summary |= {k: runs[0][k] for k in (*MATRICES, "routing_confusion", "routing_confusion_columns") if k in runs[0]}
    summary["per_order"] = [{"tasks": s["tasks"], **run} for s, run in zip(states, runs)]
    return summary


def comparison(runs: dict[str, list[dict]], profile: str = "") -> dict:
    """{method: [run state per order]} -> the benchmark record (BENCHMARKS.md keys under methods.<name>)."""
    first = next(iter(runs.values()))
    return {
        "profile": profile,
        "tasks": first[0]["tasks"],
        "held_out": first[0].get("held_out", []),
        "orders": len(first),
        "methods": {name: method_summary(states) for name, states in runs.items()},
    }


def _cell(value: float, fmt: str) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return fmt.format(value if value != 0 else 0.0)  # no "-0.00"


def markdown_table(record: dict) -> str:
    """The comparison laid out like Table 2 of the ES-MoE paper: one row per method."""
    lines = [f"| Approach | {' | '.join(header for _, header, _ in TABLE)} |", "|---|" + "---:|" * len(TABLE)]
    for name, figures in record["methods"].items():
        lines.append(f"| {name} | " + " | ".join(_cell(figures.get(k), fmt) for k, _, fmt in TABLE) + " |")
    tasks = " → ".join(record["tasks"])
    note = (
        f"\n{len(record['tasks'])} tasks ({tasks}), mean of {record['orders']} task order(s). AR, FR, BWT, FWT "
        "in R-Precision points (x100); FR BLEU-4 in BLEU points; FR T2M loss in nats."
    )
    if record.get("held_out"):
        note += (
            f" Held out of training: {', '.join(record['held_out'])} (unknown AUROC and rate count their "
            "requests after every task, with those of the tasks not trained yet)."
        )
    return "\n".join(lines) + "\n" + note + "\n"


def findings(record: dict) -> list[str]:
    """The comparisons the papers make, in words, from the figures of this record (only those whose
    methods ran): does seq-lora forget where mtl does not, does moe-hard keep what it learnt and reach
    mtl, does hard routing beat soft blending, how es-moe compares on emotion and forgetting."""
    m, lines = record["methods"], []

    def has(*names: str) -> bool:
        return all(n in m and math.isfinite(m[n].get("AR", math.nan)) for n in names)

    if has("seq-lora", "mtl"):
        lines.append(
            f"Forgetting: seq-lora FR {m['seq-lora']['FR']:.2f} R-Precision points, mtl FR "
            f"{m['mtl']['FR']:.2f}; the T2M held-out loss of earlier tasks rises by "
            f"{m['seq-lora']['FR_T2M_LOSS']:.3f} nats for seq-lora, {m['mtl']['FR_T2M_LOSS']:.3f} for mtl."
        )
    if has("moe-hard", "mtl"):
        ratio = m["moe-hard"]["AR"] / m["mtl"]["AR"] if m["mtl"]["AR"] else math.nan
        lines.append(
            f"moe-hard: FR {m['moe-hard']['FR']:.2f} points, AR {m['moe-hard']['AR']:.2f} = "
            f"{ratio:.0%} of mtl's {m['mtl']['AR']:.2f}; routing accuracy "
            f"{m['moe-hard'].get('routing_accuracy', math.nan):.3f}, unknown-scenario AUROC "
            f"{m['moe-hard'].get('unknown_auroc', math.nan):.3f}."
        )
    if has("moe-hard", "moe-soft"):
        hard, soft = m["moe-hard"], m["moe-soft"]
        verdict = "beats" if hard["AR"] > soft["AR"] else "does not beat"
        lines.append(
            f"Hard routing {verdict} soft blending here: AR {hard['AR']:.2f} vs {soft['AR']:.2f}, FR "
            f"{hard['FR']:.2f} vs {soft['FR']:.2f}, AF {hard['AF']:.3f} vs {soft['AF']:.3f} "
            "(the same experts and routers)."
        )
    if has("es-moe", "moe-hard"):
        lines.append(
            f"es-moe vs moe-hard: AWF {m['es-moe']['AWF']:.3f} vs {m['moe-hard']['AWF']:.3f}, FR "
            f"{m['es-moe']['FR']:.2f} vs {m['moe-hard']['FR']:.2f}."
        )
    return lines


def plot_heatmaps(name: str, figures: dict, tasks: list[str], path: Path) -> Path:
    """r[i][j] heatmaps of one method (first order): T2M R@1, FID, M2T BLEU-4, M2T R@3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routed = "routing_confusion" in figures
    panels = len(HEATMAPS) + routed
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 0.45 * len(tasks) + 3.2))
    if routed:
        _plot_confusion(axes[-1], figures, tasks)
    for ax, key in zip(axes, HEATMAPS):
        matrix = np.array(figures[key], dtype=float)
        worse_high = key == "matrix_t2m_fid"  # red = good, as in the papers' figures
        image = ax.imshow(matrix, cmap="coolwarm_r" if worse_high else "coolwarm")
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, "" if np.isnan(value) else f"{value:.3g}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(tasks)), [f"after {t}" for t in tasks], fontsize=7)
        ax.set_title(key.removeprefix("matrix_").replace("_", " "), fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(f"{name}: score of task j (column) after training task i (row)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_confusion(ax, figures: dict, tasks: list[str]) -> None:
    """Where each task's requests went after the last task (rows sum to 1)."""
    matrix = np.array(figures["routing_confusion"], dtype=float)
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}" if value else "", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(matrix.shape[1]), figures["routing_confusion_columns"], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(tasks)), tasks, fontsize=7)
    ax.set_title(f"routing after the last task (accuracy {figures['routing_accuracy']:.2f})", fontsize=9)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)


def json_ready(value):
    """NaN and infinities (undefined figures) as null, so that the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def write_report(record: dict, out: Path) -> dict[str, Path]:
    """report.json, report.md and heatmaps/<method>.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "markdown": out / "report.md"}
    paths["json"].write_text(json.dumps(json_ready(record), indent=1) + "\n")
    said = findings(record)
    paths["markdown"].write_text(
        markdown_table(record) + ("\n" + "\n".join(f"- {line}" for line in said) + "\n" if said else "")
    )
    for name, figures in record["methods"].items():
        paths[f"heatmap {name}"] = plot_heatmaps(name, figures, record["tasks"], out / "heatmaps" / f"{name}.png")
    return paths


def summary_lines(record: dict) -> list[str]:
    """A few readable lines for the end of a command."""
    lines = [f"{len(record['tasks'])} tasks, {record['orders']} order(s): " + ", ".join(record["tasks"])]
    for name, f in record["methods"].items():
        lines.append(
            f"  {name:<10} AR {_cell(f['AR'], '{:.2f}')}  FR {_cell(f['FR'], '{:.2f}')}  "
            f"BWT {_cell(f['BWT'], '{:.2f}')}  AF {_cell(f['AF'], '{:.3f}')}  "
            f"M2T BLEU-4 {_cell(f['M2T_BLEU4'], '{:.3f}')}  FR T2M loss {_cell(f['FR_T2M_LOSS'], '{:.3f}')}  "
            f"train {f['train_seconds']:.0f} s"
        )
    return lines + findings(record)
