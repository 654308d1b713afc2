"""ratios: A/B pairs measured side by side, alternating, in this process (`ratios_doc` says what each is):
one peft mixed batch vs set_adapter + one generate per request; merged vs peft-layer serving; the torch
vs the onnxruntime motion decoder and router features; installing a bundle into a serving MotionAgent vs
restarting it; and the node's cold start (from the latency part) vs a hot install."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from motion_agent.agent import MotionAgent
from training.synthetic_experts import family_request

from runtime.context import Bench
from runtime.experts import expert_family, expert_name
from runtime.processes import agent_config
from runtime.stats import median, ratio, time_side_by_side
from runtime.workload import AGREEMENT_REQUESTS, HEADLINE_S, MIXED_BATCH, SEED, SERVING_EXPERTS, serving_request


def part_ratios(bench: Bench) -> dict:
    """Three A/B pairs, each measured side by side in this run."""
    agent = bench.agent()
    reference = bench.reference_agent()
    mixed = mixed_batch_vs_switching(reference, bench.counts.batch_repeats)
    del reference
    language_model = reference_vs_fast(bench, bench.counts.batch_repeats * 4)
    decoders = torch_vs_onnx_decoder(bench, agent, bench.counts.decode_repeats)
    routers = torch_vs_onnx_router(agent, bench.counts.decode_repeats)
    install = hot_install_vs_restart(bench, bench.counts.install_repeats)
    cold_start_s = bench.shared.get("node_cold_start_s")
    ratios = {
        "switch_adapter_over_mixed_batch": ratio(mixed["set_adapter_ms"], mixed["mixed_batch_ms"]),
        "peft_layers_over_merged_serving": ratio(mixed["peft_layers_ms"], mixed["merged_ms"]),
        "lm_reference_over_fast": ratio(language_model["reference_ms"], language_model["fast_ms"]),
        "torch_over_onnx_decoder": ratio(decoders["torch_ms"], decoders["onnx_ms"]),
        "router_torch_over_onnx": ratio(routers["torch_ms"], routers["onnx_ms"]),
        "restart_over_hot_install": ratio(install["restart_ms"], install["hot_install_ms"]),
        "node_start_over_hot_install": ratio(
            cold_start_s * 1000.0 if cold_start_s else None, install["hot_install_ms"]
        ),
    }
    doc = {
        "switch_adapter_over_mixed_batch": (
            f"A: {MIXED_BATCH} requests of {HEADLINE_S} s, each for a different expert, served by set_adapter + one "
            "generate per request; B: the same requests in one generate with peft adapter_names= (mixed batch). "
            "Medians of whole-batch times."
        ),
        "peft_layers_over_merged_serving": (
            f"The same {MIXED_BATCH} requests one at a time through ExpertSet.serving, A: with merged=False (the "
            "expert the only active adapter of peft's LoRA layers); B: merged (the default: the expert merged into "
            "a private copy of the adapted weights, motion_agent.experts.merged_serving). Medians of whole-batch "
            "times."
        ),
        "lm_reference_over_fast": (
            f"MotionAgent.generate of {HEADLINE_S} s requests routed to an expert, {language_model['profile']} "
            "base model, A: language_model.backend torch (transformers + peft, the expert merged: the reference); "
            f"B: onnx ({language_model['weights']} weights, the default: motion_agent/model/onnx_language_model.py). "
            "Medians of per-request times; ratios_details.language_model has the stage split and how often the "
            "fast path's greedy codes agree with the reference's."
        ),
        "torch_over_onnx_decoder": (
            f"A: MotionAgent.decode of a {HEADLINE_S} s motion's codes with the torch MotionTokenizer; B: the same "
            f"with onnxruntime (OnnxTokenDecoder, {decoders['onnx_source']}). Includes the shared joint recovery."
        ),
        "router_torch_over_onnx": (
            f"MotionAgent.route of a {HEADLINE_S} s request (features + {SERVING_EXPERTS} experts' autoencoders), "
            "A: routing.features torch (the trunk through transformers); B: onnx (motion_agent.experts.onnx_trunk, the "
            "default)."
        ),
        "restart_over_hot_install": (
            "A: a new MotionAgent.from_config (base model, store with the new expert) + its first request; "
            "B: MotionAgent.install_bundle on the serving agent (verify, commit, reload) + its first request."
        ),
        "node_start_over_hot_install": (
            "A: spawning the agent node process to its first answered request over topics (latency part, tiny; "
            "None when that part did not run); B: as B above."
        ),
    }
    return {
        "ratios": ratios,
        "ratios_doc": doc,
        "ratios_details": {
            "mixed_batch": mixed,
            "language_model": language_model,
            "decoder": decoders,
            "router": routers,
            "install": install,
        },
    }


def mixed_batch_vs_switching(agent, repeats: int) -> dict:
    """One peft mixed batch against set_adapter + generate per request, one generate per request with
    adapter_names=[expert], and the agent's own way: ExpertSet.serving, merged and through peft's layers."""
    lm = agent.lm
    names = list(agent.experts.names)[:MIXED_BATCH]
    if len(names) < MIXED_BATCH:
        raise RuntimeError(f"the mixed-batch ratio needs {MIXED_BATCH} experts, the agent has {len(names)}")
    rng = np.random.default_rng(SEED)
    texts = [serving_request(i, rng, HEADLINE_S) for i in range(MIXED_BATCH)]

    def switching() -> None:
        for name, text in zip(names, texts):
            lm.model.set_adapter(name)
            lm.generate_motion([text], seed=SEED, seconds=HEADLINE_S)

    def one_by_one() -> None:
        for name, text in zip(names, texts):
            lm.generate_motion([text], seed=SEED, seconds=HEADLINE_S, adapter_names=[name])

    def mixed() -> None:
        lm.generate_motion(texts, seed=SEED, seconds=HEADLINE_S, adapter_names=names)

    def serving(merged: bool) -> Callable[[], None]:
        def call() -> None:
            agent.experts.merged = merged
            for name, text in zip(names, texts):
                with agent.experts.serving(name) as served:
                    served.generate_motion([text], seed=SEED, seconds=HEADLINE_S)

        return call

    with agent.experts.lock:
        active, merged = lm.model.active_adapter, agent.experts.merged
        try:
            times = time_side_by_side(
                {
                    "set_adapter": switching,
                    "mixed_batch": mixed,
                    "per_request_names": one_by_one,
                    "peft_layers": serving(False),
                    "merged": serving(True),
                },
                repeats,
                "mixed batch vs set_adapter",
            )
        finally:
            lm.model.set_adapter(active)
            agent.experts.merged = merged
    return {f"{name}_ms": median(values) for name, values in times.items()} | {"batch": MIXED_BATCH}


def reference_vs_fast(bench: Bench, repeats: int) -> dict:
    """The reference language model against the fast path, each in a MotionAgent on the same base and
    store (smollm2-135m when the run has it, else tiny): whole requests side by side, then the agreement
    of their greedy motion codes over AGREEMENT_REQUESTS requests (1.0 at float32; quantized weights
    round differently, and a different code early changes the rest of a sequence)."""
    from dataclasses import replace

    profile = "smollm2-135m" if "smollm2-135m" in bench.bases else "tiny"
    store = bench.serving_store(profile)
    reference = bench.reference_agent(profile, store)
    fast = MotionAgent.from_config(agent_config(bench.bases[profile], store))
    rng = np.random.default_rng(SEED)
    texts = [serving_request(i % SERVING_EXPERTS, rng, HEADLINE_S) for i in range(AGREEMENT_REQUESTS)]
    for agent in (reference, fast):
        agent.generate(texts[0])  # warm
    times = time_side_by_side(
        {"reference": lambda: reference.generate(texts[0]), "fast": lambda: fast.generate(texts[0])},
        repeats,
        f"reference vs fast language model ({profile})",
    )
    agreement = []
    for agent in (reference, fast):
        agent.config = replace(agent.config, generation=replace(agent.config.generation, temperature=0.0))
    for text in tqdm(texts, desc="greedy agreement", unit="request"):
        a, b = reference.generate(text).codes, fast.generate(text).codes
        agreement.append(float(np.mean(a[: len(b)] == b[: len(a)])) if len(a) == len(b) else 0.0)
    served = fast.generate(texts[0])
    return {
        "profile": profile,
        "weights": fast.config.language_model.weights,
        "reference_ms": median(times["reference"]),
        "fast_ms": median(times["fast"]),
        "fast_split_ms": {k: round(v, 2) for k, v in served.timings_ms.items()},
        "greedy_code_agreement": round(float(np.mean(agreement)), 4),
        "agreement_requests": len(texts),
    }


def onnx_decoder(bench: Bench, base_dir: Path):
    """The base model's exported decoder, or one exported now when its tokenizer folder has none."""
    from motion_agent.model.base_model import tokenizer_folder
    from motion_agent.model.tokenizer import MotionTokenizer
    from motion_agent.model.tokenizer_onnx import OnnxTokenDecoder, load_decoder

    folder = tokenizer_folder(base_dir)
    try:
        return load_decoder(folder, "onnx"), "the base model's tokenizer/decoder.onnx"
    except FileNotFoundError:
        from training.tokenizer.export import export_onnx

        target = bench.work / "onnx-tokenizer"
        export_onnx(MotionTokenizer.load(folder), target, encoder=False)
        return OnnxTokenDecoder(target), (
            "exported by this benchmark: the base model's tokenizer folder has no decoder.onnx"
        )


def torch_vs_onnx_decoder(bench: Bench, agent, repeats: int) -> dict:
    """agent.decode (the `decode` stage of a request) with each decoder swapped in; also how far apart
    their joints are, so a fast but wrong export would show."""
    codes = agent.generate(serving_request(0, np.random.default_rng(SEED), HEADLINE_S)).codes
    onnx, source = onnx_decoder(bench, bench.bases["tiny"])
    serving, torch_decoder = agent.decoder, agent.encoder  # the torch MotionTokenizer, whichever decodes now

    def decode_with(decoder) -> Callable[[], np.ndarray]:
        def call() -> np.ndarray:
            agent.decoder = decoder
            return agent.decode(codes)

        return call

    try:
        difference = float(np.abs(decode_with(torch_decoder)() - decode_with(onnx)()).max())
        times = time_side_by_side(
            {"torch": decode_with(torch_decoder), "onnx": decode_with(onnx)}, repeats, "torch vs onnx decoder"
        )
    finally:
        agent.decoder = serving
    return {
        "torch_ms": median(times["torch"]),
        "onnx_ms": median(times["onnx"]),
        "tokens": len(codes),
        "max_abs_diff_m": difference,
        "onnx_source": source,
    }


def torch_vs_onnx_router(agent, repeats: int) -> dict:
    """agent.route (the `route` stage of a request) with the routers' features from either backend; also
    how far apart the features are, so a fast but wrong export would show."""
    from dataclasses import replace

    from motion_agent.model.language_model import t2m_prompt, without_duration

    prompt = t2m_prompt(without_duration(serving_request(0, np.random.default_rng(SEED), HEADLINE_S)))
    config = agent.config

    def route_with(backend: str) -> Callable[[], object]:
        def call() -> object:
            agent.config = replace(config, routing=replace(config.routing, features=backend))
            return agent.route(prompt, "t2m")

        return call

    try:
        torch_decision, onnx_decision = route_with("torch")(), route_with("onnx")()
        times = time_side_by_side(
            {"torch": route_with("torch"), "onnx": route_with("onnx")}, repeats, "torch vs onnx router"
        )
    finally:
        agent.config = config
    return {
        "torch_ms": median(times["torch"]),
        "onnx_ms": median(times["onnx"]),
        "same_expert": torch_decision.expert == onnx_decision.expert,
        "max_abs_score_diff": max(
            (abs(torch_decision.scores[k] - onnx_decision.scores[k]) for k in torch_decision.scores), default=0.0
        ),
    }


def hot_install_vs_restart(bench: Bench, repeats: int) -> dict:
    """Serving a new expert: install it into the running agent, or start the agent again with it."""
    from motion_agent.agent import MotionAgent

    factory = bench.factory("tiny")
    config = agent_config(bench.bases["tiny"], bench.serving_store("tiny"))
    agent = MotionAgent.from_config(config)
    rng = np.random.default_rng(SEED)
    hot, restart, served = [], [], []
    try:
        agent.generate(serving_request(0, rng, HEADLINE_S))  # warm
        new_experts = range(SERVING_EXPERTS, SERVING_EXPERTS + repeats)  # families no serving expert has
        for index in tqdm(new_experts, desc="hot install vs restart", unit="expert"):
            bundle = factory.bundle(index)
            text = family_request(expert_family(index), rng, HEADLINE_S)
            start = time.perf_counter()
            agent.install_bundle(bundle, bench.signer.keyring)
            result = agent.generate(text)
            hot.append((time.perf_counter() - start) * 1000.0)
            served.append(result.expert == expert_name(index))
            start = time.perf_counter()
            fresh = MotionAgent.from_config(config)  # the store now holds the new expert too
            fresh.generate(text)
            restart.append((time.perf_counter() - start) * 1000.0)
            del fresh
            gc.collect()
    finally:
        del agent
        gc.collect()
    return {
        "hot_install_ms": median(hot),
        "restart_ms": median(restart),
        "new_expert_served_first_request": sum(served),
        "installs": len(served),
    }


# --- scaling with installed experts --------------------------------------------------------------
