"""latency: the agent node in a child process (`python -m motion_agent.nodes.motion_node`, as `motion-agent
launch` starts it) with SERVING_EXPERTS experts in its store, and this process its client over real
topics. One std_msgs/String request on `text_command` at a time (the node lets the latest request win,
so requests never overlap), timed from publish to the JointTrajectory arriving here, for 2, 4 and 8 s
motions and each backbone profile. The node's OK diagnostic carries its own time per stage (queue, route,
language_model, decode, retarget, total); `middleware` = client time - agent total."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from runtime.context import Bench, shown_path
from runtime.processes import NodeProcess, open_client, write_agent_yaml
from runtime.stats import deep_merge, median, percentiles
from runtime.workload import HEADLINE_S, LENGTHS_S, PROFILES, SEED, SERVING_EXPERTS, STAGES, serving_request

if TYPE_CHECKING:
    from motion_agent.nodes.client import Reply


def part_latency(bench: Bench) -> dict:
    """Publish -> JointTrajectory across processes, per profile and motion length, with the node's split."""
    figures: dict = {
        "latency_ms": {},
        "first_point_ms": {},
        "real_time_factor": {},
        "latency_split_ms": {},
        "latency_details": {},
    }
    for profile in PROFILES:
        if profile in bench.skipped:
            reason = bench.skipped[profile]
            print(f"latency: {profile} skipped ({reason})")
            figures["latency_ms"][profile] = {"skipped": reason}
            figures["latency_split_ms"][profile] = {"skipped": reason}
            figures["real_time_factor"][profile] = None
            continue
        deep_merge(figures, measure_latency(bench, profile, bench.bases[profile]))
    figures["router_fraction"] = figures["latency_details"].get("tiny", {}).get("router_fraction")
    figures["latency_doc"] = (
        f"Client time from publishing a std_msgs/String on text_command to the whole JointTrajectory arriving, one "
        f"request at a time, the node in its own process serving {SERVING_EXPERTS} experts, as config/agent.yaml "
        "runs it (the onnx language model; trajectories streamed in chunks). first_point_ms: to the first chunk "
        "(every length pooled). latency_split_ms: medians of the "
        f"node's per-stage times for {HEADLINE_S} s requests; middleware = client time - agent total (transport, "
        "request callback, building and serialising the messages); language_model_fixed and _per_token: the "
        "language_model stage as a line through (motion tokens, ms) of every request of every length (fixed: "
        "tokenisation, prompt prefill, sampler setup; per token: one decoding step with the KV cache); tokenize: "
        f"tokenising a {HEADLINE_S} s request's prompt, in the benchmark's process. real_time_factor: seconds of "
        "motion / seconds "
        f"waited over every timed request. router_fraction: median route / total for the {HEADLINE_S} s requests "
        "of the tiny profile."
    )
    return figures


def measure_latency(bench: Bench, profile: str, base_dir: Path) -> dict:
    """One node process for one profile; lengths interleaved, so a slow spell of the machine hits all alike."""
    config = write_agent_yaml(bench.work / f"agent-latency-{profile}.yaml", bench.serving_store(profile))
    rng = np.random.default_rng(SEED)
    plan = [
        (seconds, serving_request(n, rng, seconds))
        for n in range(bench.counts.latency_requests)
        for seconds in LENGTHS_S
    ]  # lengths interleaved
    replies: dict[int, list[Reply]] = {seconds: [] for seconds in LENGTHS_S}
    with NodeProcess(base_dir, config, bench.log(f"latency-{profile}")) as node, open_client(config) as client:
        node.wait_ready(client)
        cold_start_s = node.warm_up(client)
        for seconds, text in tqdm(plan, desc=f"latency {profile}", unit="request"):
            replies[seconds].append(client.ask(text))
        node_rss = node.rss_mb()
    if profile == "tiny":
        bench.shared["node_cold_start_s"] = cold_start_s
    return latency_figures(profile, replies, cold_start_s, node_rss, base_dir)


def trained_steps(base_dir: Path) -> int | None:
    """How many base-stage steps the base model had (its history.json), for the record."""
    try:
        return int(json.loads((Path(base_dir) / "history.json").read_text())[-1]["step"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def latency_figures(
    profile: str, replies: dict[int, list[Reply]], cold_start_s: float, node_rss: float | None, base_dir: Path
) -> dict:
    from motion_agent.model.base_model import BaseModelSpec

    ok = {seconds: [r for r in replies[seconds] if r.ok] for seconds in replies}
    everything = [r for rs in ok.values() for r in rs]
    headline = ok[HEADLINE_S]
    motion_s = sum(float(r.values["seconds"]) for r in everything)
    waited_s = sum(r.client_ms for r in everything) / 1000.0
    split = {stage: median([r.stage_ms(stage) for r in headline]) for stage in STAGES}
    split["middleware"] = median([r.client_ms - r.stage_ms("total") for r in headline])
    split.update(language_model_split(everything))
    split["tokenize"] = tokenize_ms(base_dir)
    return {
        "latency_ms": {profile: {f"{s}s": percentiles([r.client_ms for r in ok[s]]) for s in LENGTHS_S}},
        "first_point_ms": {profile: percentiles([r.first_point_ms for r in everything])},
        "real_time_factor": {profile: round(motion_s / waited_s, 3) if waited_s else None},
        "latency_split_ms": {profile: split},
        "latency_details": {
            profile: {
                "backbone": BaseModelSpec.read(base_dir).backbone,
                "base_model": shown_path(base_dir),
                "base_trained_steps": trained_steps(base_dir),  # latency does not depend on it: lengths are fixed
                "requests_per_length": len(replies[HEADLINE_S]),
                "not_ok": {f"{s}s": Counter(r.level for r in replies[s] if not r.ok) for s in LENGTHS_S},
                "router_fraction": median([r.stage_ms("route") / r.stage_ms("total") for r in headline]),
                "served_by": dict(Counter(r.values.get("expert", "?") for r in everything)),
                "real_time_factor_at_p50_by_length": {
                    f"{s}s": round(s * 1000.0 / percentiles([r.client_ms for r in ok[s]])["p50"], 3) if ok[s] else None
                    for s in LENGTHS_S
                },
                "node_cold_start_s": cold_start_s,
                "node_rss_mb": node_rss,
            }
        },
    }


def language_model_split(replies: list[Reply]) -> dict[str, float | None]:
    """The language-model stage as a fixed part plus a cost per motion token: a least-squares line
    through every request's (motion tokens, stage ms) over the motion lengths. `language_model_fixed` is
    tokenisation, the prompt's prefill and the sampler's setup; `language_model_per_token` one decoding
    step with the KV cache."""
    tokens = np.asarray([float(r.values["motion_tokens"]) for r in replies])
    stage = np.asarray([r.stage_ms("language_model") for r in replies])
    if len(np.unique(tokens)) < 2:
        return {"language_model_fixed": None, "language_model_per_token": None}
    per_token, fixed = np.polyfit(tokens, stage, 1)
    return {"language_model_fixed": round(float(fixed), 3), "language_model_per_token": round(float(per_token), 3)}


def tokenize_ms(base_dir: Path, repeats: int = 200) -> float:
    """Median ms to tokenise one 4 s request's T2M prompt with the base model's tokenizer (the backbone's,
    with the motion tokens added), in this process: part of language_model_fixed."""
    from transformers import AutoTokenizer

    from motion_agent.model.backbone import resolve_backbone
    from motion_agent.model.base_model import BaseModelSpec
    from motion_agent.model.language_model import MotionVocabulary, t2m_prompt

    spec = BaseModelSpec.read(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone(spec.backbone))
    tokenizer.add_tokens(MotionVocabulary.token_strings(spec.codebook_size), special_tokens=True)
    prompt = t2m_prompt(serving_request(0, np.random.default_rng(SEED), HEADLINE_S))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokenizer([prompt], return_tensors="pt", padding=True)
        times.append((time.perf_counter() - start) * 1000.0)
    return median(times)


# --- captioning ------------------------------------------------------------------------------------
