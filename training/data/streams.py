"""Continual task streams over a HumanML3D-layout corpus, written as split files any trainer reads.

    <out>/tasks.json                 {"kind", "tasks": [names in training order], "sizes", ...}
    <out>/<task>/{train,val,test}.txt   motion ids

Kinds: `clusters` (the LoRA-MoE paper: k-means over caption sentence embeddings, K tasks, with a
report of cluster sizes, top words and centroid similarities), `unseen` (ES-MoE: one scenario per
task) and `mixed` (ES-MoE: each task mostly one scenario, the rest drawn from the others). Each task
keeps the corpus's own train / val / test split of its motions.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.cluster.vq import kmeans2

from training.data.humanml3d import SPLITS, HumanML3D

KINDS = ("clusters", "unseen", "mixed")
STOPWORDS = frozenset(
    "a an the is are and or of to in on with while his her their its it as at by for from up down".split()
    + "someone person man woman figure character feeling looking does".split()
)


@dataclass(frozen=True)
class StreamConfig:
    kind: str = "unseen"
    clusters: int = 5
    seed: int = 0
    mixed_purity: float = 0.7  # share of a mixed task drawn from its main scenario
    top_words: int = 8

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.clusters < 1:
            raise ValueError(f"clusters must be at least 1, got {self.clusters}")
        if not 0.0 < self.mixed_purity <= 1.0:
            raise ValueError(f"mixed_purity must be in (0, 1], got {self.mixed_purity}")


def _motion_ids(corpus: HumanML3D) -> list[str]:
    ids = sorted({i for split in ("train", "val", "test") for i in corpus.ids(split)})
    return [i for i in ids if corpus.motion_clips(i)]


def scenario_tasks(corpus: HumanML3D, config: StreamConfig) -> dict[str, list[str]]:
    """`unseen`: task = scenario; `mixed`: each motion stays with its scenario's task with probability
    `mixed_purity`, else joins one of the other tasks."""
    ids = _motion_ids(corpus)
    missing = [i for i in ids if "scenario" not in corpus.metadata.get(i, {})]
    if missing:
        raise ValueError(f"scenario streams need metadata.json with a scenario per motion; {missing[0]} has none")
    scenarios = sorted({corpus.metadata[i]["scenario"] for i in ids})
    rng = np.random.default_rng([config.seed, 2])
    tasks: dict[str, list[str]] = {s: [] for s in scenarios}
    for motion_id in ids:
        home = corpus.metadata[motion_id]["scenario"]
        if config.kind == "mixed" and len(scenarios) > 1 and rng.random() > config.mixed_purity:
            home = str(rng.choice([s for s in scenarios if s != home]))
        tasks[home].append(motion_id)
    if config.kind == "mixed":
        return {f"mostly_{name}": members for name, members in tasks.items()}
    return tasks


def cluster_tasks(corpus: HumanML3D, config: StreamConfig) -> tuple[dict[str, list[str]], dict]:
    """k-means over each motion's mean caption embedding; returns tasks and the similarity report."""
    from training.data.text_embeddings import embed

    ids = _motion_ids(corpus)
    captions = {i: [c.text for clip in corpus.motion_clips(i) for c in clip.captions] for i in ids}
    flat = [text for i in ids for text in captions[i]]
    vectors = embed(flat)
    bounds = np.cumsum([0] + [len(captions[i]) for i in ids])
    motion_vectors = np.stack([vectors[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
    motion_vectors /= np.linalg.norm(motion_vectors, axis=1, keepdims=True)
    if config.clusters > len(ids):
        raise ValueError(f"cannot make {config.clusters} clusters from {len(ids)} motions")
    centroids, labels = kmeans2(motion_vectors.astype(np.float64), config.clusters, minit="++", seed=config.seed)
    order = sorted(range(config.clusters), key=lambda c: -int((labels == c).sum()))  # biggest first
    tasks = {f"cluster_{rank}": [ids[n] for n in np.flatnonzero(labels == c)] for rank, c in enumerate(order)}
    empty = [name for name, members in tasks.items() if not members]
    if empty:
        raise ValueError(f"k-means left {empty[0]} empty; try fewer clusters or another seed")
    unit = centroids[order] / np.linalg.norm(centroids[order], axis=1, keepdims=True)
    report = {
        "cluster_sizes": {name: len(members) for name, members in tasks.items()},
        "top_words": {
            name: _top_words([t for i in members for t in captions[i]], flat, config.top_words)
            for name, members in tasks.items()
        },
        "centroid_cosine_similarity": np.round(unit @ unit.T, 4).tolist(),
    }
    return tasks, report


def _words(texts: list[str]) -> Counter:
    return Counter(w for t in texts for w in re.findall(r"[a-z]+", t.lower()) if w not in STOPWORDS)


def _top_words(cluster_texts: list[str], all_texts: list[str], count: int) -> list[str]:
    """Words most over-represented in a cluster relative to the whole corpus (lift x frequency)."""
    inside, overall = _words(cluster_texts), _words(all_texts)
    total_in, total_all = max(sum(inside.values()), 1), max(sum(overall.values()), 1)
    score = {w: (n / total_in) * np.log((n / total_in) / (overall[w] / total_all) + 1) for w, n in inside.items()}
    return [w for w, _ in sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:count]]


def corpus_splits(corpus: HumanML3D, tasks: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    """Each task's motions cut along the corpus's own split files. The tokenizer, the base model and
    the evaluator train on the corpus train split, so a stream drawing its test clips anywhere else
    would score them on motions they have already seen."""
    split_of = {i: split for split in SPLITS for i in corpus.ids(split)}
    return {
        name: {split: sorted(i for i in members if split_of[i] == split) for split in SPLITS}
        for name, members in tasks.items()
    }


def write_stream(corpus_root: str | Path, out: str | Path, config: StreamConfig) -> dict:
    """Build the stream and write its split files (and the cluster report, PNG included)."""
    corpus = HumanML3D(corpus_root)
    report: dict = {}
    if config.kind == "clusters":
        tasks, report = cluster_tasks(corpus, config)
    else:
        tasks = scenario_tasks(corpus, config)
    out = Path(out)
    summary = {
        "kind": config.kind,
        "corpus": str(Path(corpus_root).resolve()),
        "seed": config.seed,
        "tasks": list(tasks),
        "sizes": {},
    }
    for name, splits in corpus_splits(corpus, tasks).items():
        (out / name).mkdir(parents=True, exist_ok=True)
        for split, ids in splits.items():
            (out / name / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        summary["sizes"][name] = {split: len(ids) for split, ids in splits.items()}
    (out / "tasks.json").write_text(json.dumps(summary, indent=1) + "\n")
    if report:
        (out / "cluster_report.json").write_text(json.dumps(report, indent=1) + "\n")
        plot_similarity(report, out / "cluster_similarity.png")
    return {**summary, **report}


def read_stream(folder: str | Path) -> dict[str, dict[str, list[str]]]:
    """{task: {split: ids}} in training order, as `write_stream` wrote it."""
    folder = Path(folder)
    summary = json.loads((folder / "tasks.json").read_text())
    return {
        task: {split: (folder / task / f"{split}.txt").read_text().split() for split in ("train", "val", "test")}
        for task in summary["tasks"]
    }


def plot_similarity(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["cluster_sizes"])
    matrix = np.array(report["centroid_cosine_similarity"])
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 1.0 * len(names) + 1.5))
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="coolwarm")
    labels = [f"{n} ({report['cluster_sizes'][n]})\n{', '.join(report['top_words'][n][:3])}" for n in names]
    ax.set_xticks(range(len(names)), [n for n in names], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), labels, fontsize=7)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="centroid cosine similarity")
    ax.set_title("caption clusters: centroid similarity")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
