"""The reliability run's summary lines and its figure (conformance by attack class, fuzz refusals by
reason, text latency with and without a pose flood, the soak's resident memory)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def summary_lines(figures: dict) -> list[str]:
    lines = []
    if "conformance" in figures:
        c = figures["conformance"]
        lines.append(f"conformance  {c['passed']}/{c['cases']} attacks refused with the store and serving unchanged")
        walk = ", ".join(f"{int(k) // 1000} KB {v:.2f} ms" for k, v in c["pax_digits_refusal_ms"].items())
        lines.append(f"             pax digits refused in: {walk}")
    if "fuzz" in figures:
        f = figures["fuzz"]
        lines.append(f"fuzz         {f['bundles']} bundles: {f['installed']} installed, {f['tracebacks']} tracebacks, "
                     f"{f['store_changed']} store changes")  # fmt: skip
    if "topic_fuzz" in figures:
        t = figures["topic_fuzz"]
        lines.append(f"topic fuzz   {t['messages']} messages over {len(t['by_topic'])} topics: {t['crashes']} crashes, "
                     f"answered after: {t['answered_after']}")  # fmt: skip
    if "pose_flood" in figures:
        p = figures["pose_flood"]["text_latency_ms"]
        lines.append(f"pose flood   text p50 {p['quiet'].get('p50')} ms quiet, {p['flooded'].get('p50')} ms flooded")
    if "node_kill" in figures:
        k = figures["node_kill"]
        lines.append(f"node kill    {k['consistent']}/{k['trials']} killed installs, then served as indexed")
    if "soak_smollm2" in figures:
        s = figures["soak_smollm2"]
        if "skipped" in s:
            lines.append(f"soak         skipped: {s['skipped']}")
        else:
            rss = f"RSS {s['rss_start_mb']:.0f} -> {s['rss_end_mb']:.0f} MB ({s['rss_growth']:+.1%})"
            lines.append(f"soak         {s['requests']} requests, {s['crashes']} crashes, {rss}")
    return lines


def plot(figures: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax = axes[0][0]
    if "conformance" in figures:
        by_class = Counter(c["attack"] for c in figures["conformance"]["by_case"].values())
        passed = Counter(c["attack"] for c in figures["conformance"]["by_case"].values() if c["passed"])
        names = sorted(by_class)
        ax.barh(names, [by_class[n] for n in names], color="#ddd", label="cases")
        ax.barh(names, [passed[n] for n in names], color="#2a7", label="refused, nothing changed")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title("conformance: attacks by class")
    ax = axes[0][1]
    if "fuzz" in figures:
        reasons = figures["fuzz"]["refusal_reasons"]
        ax.barh(list(reasons), list(reasons.values()), color="#47a")
        ax.set_xlabel("fuzzed bundles")
    ax.set_title("fuzz: refusals by reason (0 installed)")
    ax = axes[1][0]
    if "pose_flood" in figures:
        latency = figures["pose_flood"]["text_latency_ms"]
        ax.bar(["quiet", "10,000-pose flood"], [latency["quiet"].get("p50", 0), latency["flooded"].get("p50", 0)],
               color=["#2a7", "#c63"])  # fmt: skip
        ax.set_ylabel("text request p50 (ms)")
    ax.set_title("text latency under a pose flood")
    ax = axes[1][1]
    soak = figures.get("soak_smollm2", {})
    if soak.get("rss_samples_mb"):
        samples = [[0, soak["rss_start_mb"]], *soak["rss_samples_mb"]]
        ax.plot([s[0] for s in samples], [s[1] for s in samples], marker="o")
        ax.set_ylim(0, max(s[1] for s in samples) * 1.15)  # from zero: growth is read against the whole size
        ax.set_xlabel("requests")
        ax.set_ylabel("agent node RSS (MB)")
    ax.set_title("soak (smollm2-135m): resident memory")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
