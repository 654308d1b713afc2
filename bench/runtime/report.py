"""What a run reports: the issue-10 targets checked against the figures, the Markdown summary (runtime.md,
also printed), and the result files, written through bench/common.py's write_result (into bench/results
for a full run, into a temporary folder for a smoke or partial one)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from common import RESULTS_DIR, write_result
from runtime.workload import HEADLINE_S, PROFILES, SCALING_COUNTS, STAGES

RESULT_NAME = "runtime"

# --- targets of issue 10, checked in the summary --------------------------------------------------------

TARGET_TINY_4S_P50_MS = 100.0  # p50 for a 4 s motion with the tiny profile
TARGET_SMOLLM2_4S_P50_MS = 1000.0  # the same with smollm2-135m
TARGET_ROUTER_FRACTION = 0.05  # router cost as a share of generation
TARGET_SCALING_SLOWDOWN = 0.10  # p50 at the most experts within 10 % of 1 expert
# issue 33 (a robot's CPU): the fast language model, streamed trajectories, 256 experts at the cost of one
FAST_TINY_4S_P50_MS = 25.0
FAST_SMOLLM2_4S_P50_MS = 150.0
FAST_FIRST_POINT_P50_MS = 60.0  # smollm2-135m: request published -> first trajectory chunk received
FAST_EXPERT_LOAD_MS = 50.0  # the last expert's install to serving, at the most experts


def targets(figures: dict) -> dict:
    """The issue-10 targets, met or not (None where the part did not run)."""
    tiny_4s, smollm2_4s = (
        figures.get("latency_ms", {}).get(profile, {}).get(f"{HEADLINE_S}s", {}).get("p50") for profile in PROFILES
    )
    router = figures.get("router_fraction")
    experts = figures.get("experts", {})
    one, many = experts.get("1", {}).get("p50_ms"), experts.get(str(max(SCALING_COUNTS)), {}).get("p50_ms")
    slowdown = round(many / one - 1.0, 4) if one and many else None

    def check(value, limit, at_most: bool = False):
        met = None if value is None or limit is None else value <= limit if at_most else value < limit
        return {"value": value, "target": limit, "met": met}

    def check_at_most(value, limit):
        return check(value, limit, at_most=True)

    most = str(max(SCALING_COUNTS))
    first_point = figures.get("first_point_ms", {}).get("smollm2-135m", {}).get("p50")
    rss = [experts.get(n, {}).get("rss_mb") for n in ("1", most)]
    adapter_mb = figures.get("adapter_bytes", 0) / 1e6
    rss_growth = round(rss[1] - rss[0], 1) if None not in rss else None
    fast = {
        f"fast_tiny_{HEADLINE_S}s_p50_ms_at_most": check_at_most(tiny_4s, FAST_TINY_4S_P50_MS),
        f"fast_smollm2-135m_{HEADLINE_S}s_p50_ms_at_most": check_at_most(smollm2_4s, FAST_SMOLLM2_4S_P50_MS),
        "fast_smollm2-135m_first_point_p50_ms_at_most": check_at_most(first_point, FAST_FIRST_POINT_P50_MS),
        f"experts_{most}_p50_over_1_at_most": check_at_most(round(many / one, 4) if one and many else None, 1.10),
        f"experts_rss_growth_{most}_mb_at_most": check_at_most(rss_growth, round(int(most) * adapter_mb, 1) or None),
        f"expert_load_ms_{most}_at_most": check_at_most(
            figures.get("expert_load_ms", {}).get(most), FAST_EXPERT_LOAD_MS
        ),
    }
    return fast | {
        f"tiny_{HEADLINE_S}s_p50_ms_below": check(tiny_4s, TARGET_TINY_4S_P50_MS),
        f"smollm2-135m_{HEADLINE_S}s_p50_ms_below": check(smollm2_4s, TARGET_SMOLLM2_4S_P50_MS),
        "router_fraction_below": check(router, TARGET_ROUTER_FRACTION),
        f"slowdown_{max(SCALING_COUNTS)}_over_1_experts_below": check(slowdown, TARGET_SCALING_SLOWDOWN),
    }


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def latency_lines(figures: dict) -> list[str]:
    lines = [
        "## Text -> JointTrajectory over topics (ms)",
        "",
        "| profile | motion | p50 | p95 | p99 | real-time factor |",
        "|---|---|---|---|---|---|",
    ]
    for profile, by_length in figures["latency_ms"].items():
        if "skipped" in by_length:
            lines.append(f"| {profile} | skipped: {by_length['skipped']} | | | | |")
            continue
        rtf = fmt(figures["real_time_factor"].get(profile), 2)
        lines += [
            f"| {profile} | {length} | {fmt(s['p50'])} | {fmt(s['p95'])} | {fmt(s['p99'])} | {rtf} |"
            for length, s in by_length.items()
        ]
    stages = STAGES + ("middleware",)
    lines += [
        "",
        f"Split of a {HEADLINE_S} s request (median ms):",
        "",
        "| profile | " + " | ".join(stages) + " |",
        "|---" * (len(stages) + 1) + "|",
    ]
    lines += [
        f"| {profile} | " + " | ".join(fmt(split[s]) for s in stages) + " |"
        for profile, split in figures["latency_split_ms"].items()
        if "skipped" not in split
    ]
    lines += [
        "",
        "Language-model stage (ms): fixed part (tokenisation, prompt prefill) + per motion token "
        "(line through every request's tokens and time); tokenisation alone:",
        "",
    ]
    lines += [
        f"- {profile}: {fmt(split.get('language_model_fixed'))} + {fmt(split.get('language_model_per_token'))}"
        f" per token; tokenize {fmt(split.get('tokenize'), 3)}"
        for profile, split in figures["latency_split_ms"].items()
        if "skipped" not in split
    ]
    router = fmt(figures.get("router_fraction"), 4)
    return lines + ["", f"Router fraction (route / total, tiny, {HEADLINE_S} s): {router}", ""]


def experts_lines(figures: dict) -> list[str]:
    lines = [
        f"## Installed experts (in process, {HEADLINE_S} s motion)",
        "",
        "| experts | p50 ms | p99 ms | RSS MB |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {fmt(v['p50_ms'])} | {fmt(v['p99_ms'])} | {fmt(v['rss_mb'])} |" for n, v in figures["experts"].items()
    ]
    return lines + [""]


def hot_swap_lines(figures: dict) -> list[str]:
    swap = figures["hot_swap"]
    return [
        "## Hot swap under load",
        "",
        f"lost {swap['lost']}, p50 penalty {fmt(swap['p50_penalty_ratio'], 3)}x (p50 ms before/swap/after: "
        f"{', '.join(fmt(v) for v in swap['p50_ms_by_phase'].values())}; requests "
        f"{', '.join(str(v) for v in swap['requests_by_phase'].values())}); installs ok "
        f"{swap['installs_ok']}/{swap['bundles_dropped']}",
        "",
    ]


def soak_lines(figures: dict) -> list[str]:
    soak = figures["soak"]
    return [
        "## Soak",
        "",
        f"{soak['requests']} requests, crashes {soak['crashes']}, node RSS {fmt(soak['rss_start_mb'])} -> "
        f"{fmt(soak['rss_end_mb'])} MB, answered as expected {soak['answered_as_expected']}, unexpected "
        f"{soak['unexpected'] or 'none'}, {soak['wall_s']} s",
        "",
    ]


def ratio_lines(figures: dict) -> list[str]:
    lines = ["## Ratios (A/B, measured side by side)", "", "| ratio | A/B | what |", "|---|---|---|"]
    lines += [
        f"| {name} | {fmt(value, 3)} | {figures['ratios_doc'][name]} |" for name, value in figures["ratios"].items()
    ]
    return lines + [""]


def target_lines(figures: dict) -> list[str]:
    def verdict(met: bool | None) -> str:
        return "not measured" if met is None else "met" if met else "not met"

    return ["## Targets (issues 10 and 33)", ""] + [
        f"- {name}: {fmt(t['value'], 4)} (target {t['target']}): {verdict(t['met'])}"
        for name, t in figures["targets"].items()
    ]


def summary_lines(figures: dict) -> list[str]:
    """The Markdown summary (runtime.md), also printed at the end: one section per part that ran."""
    machine = figures.get("machine", {})
    lines = [
        "# Runtime benchmark",
        "",
        f"commit {figures.get('commit', '?')}, {machine.get('cpu', '?')} ({machine.get('cores', '?')} cores, "
        f"torch threads {figures.get('torch_threads')}), {figures.get('created', '')}; parts: "
        f"{', '.join(figures['parts'])}{' (quick smoke run)' if figures.get('quick') else ''}",
        "",
    ]
    if "latency_ms" in figures:
        lines += latency_lines(figures)
    if "caption_latency_ms" in figures:
        lines += [f"Caption of a 2 s window (in process): p50 {fmt(figures['caption_latency_ms']['p50'])} ms", ""]
    sections = (
        ("experts", experts_lines),
        ("hot_swap", hot_swap_lines),
        ("soak", soak_lines),
        ("ratios", ratio_lines),
        ("targets", target_lines),
    )
    for key, section in sections:
        if key in figures:
            lines += section(figures)
    return lines


def write_results(figures: dict, official: bool) -> tuple[Path, Path, list[str]]:
    """runtime.json and runtime.md: in bench/results for an official (full) run, else in a temporary folder
    of their own, so that smoke and partial runs never replace real results. Returns both paths and the
    summary's lines."""
    folder = None if official else Path(tempfile.mkdtemp(prefix="bench-runtime-results-"))
    path = write_result(RESULT_NAME, figures, folder)
    markdown = RESULTS_DIR / f"{RESULT_NAME}.md" if official else path.with_suffix(".md")
    lines = summary_lines(json.loads(path.read_text()))
    markdown.write_text("\n".join(lines) + "\n")
    return path, markdown, lines
