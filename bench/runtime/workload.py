"""What the runtime benchmark measures and with how much: the parts, profiles and motion lengths, how
many requests of each (Counts; --quick's QUICK), the requests themselves (of the synthetic experts'
request families, training.synthetic_experts), and the soak's mix of good and bad requests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.synthetic_experts import FAMILY_NAMES, family_request

# --- what is measured ---------------------------------------------------------------------------------

PARTS = ("latency", "caption", "ratios", "experts", "hot_swap", "soak")
PROFILES = ("tiny", "smollm2-135m")  # backbone profiles of the latency part (BENCHMARKS.md keys)
LENGTHS_S = (2, 4, 8)  # motion lengths of the latency part, in seconds ("... for 4 seconds")
HEADLINE_S = 4  # the length the split, router fraction, scaling and ratios use (the targets name 4 s)
STAGES = ("queue", "route", "language_model", "decode", "retarget", "total")  # latency_ms.<stage> on /diagnostics
SERVING_EXPERTS = 4  # experts in the store of a serving agent: the default model ships 4 scenario experts
SCALING_COUNTS = (1, 16, 64, 256)  # experts installed in the scaling part
MIXED_BATCH = 4  # requests, each routed to a different expert, in the mixed-batch ratio
AGREEMENT_REQUESTS = 40  # greedy requests whose codes the reference and the fast language model both decode
CAPTION_SECONDS = 2.0  # pose window captioned: 40 frames at 20 fps
REPLACEMENT_VERSION = "1.1.0"  # the hot swap also replaces an installed expert with this version
FIRST_VERSION = "1.0.0"

# --- how it is measured --------------------------------------------------------------------------------

WARMUP_REQUESTS = 3  # untimed requests after a model load (first-call allocations, lazy imports)
START_TIMEOUT_S = 180.0  # python + torch + model load in a child process, on a busy machine
ANSWER_TIMEOUT_S = 60.0  # a request with no answer by then is lost
SETTLE_S = 0.5  # after discovery, so both sides have matched each other's endpoints
SPIN_S = 0.005  # one wait of the client's executor; messages wake it earlier
STOP_GRACE_S = 30.0  # after SIGINT, how long a child gets before it is killed
HOT_SWAP_INTERVAL_S = 3.0  # one bundle dropped into the inbox this often
HOT_SWAP_POLL_S = 0.5  # node.store_poll_s of the hot-swap node: a bundle is taken after two unchanged polls
HOT_SWAP_TAIL_S = 60.0  # after the last drop, how long the installs may take before the phase ends anyway
SOAK_SECONDS = 1  # good soak requests ask for 1 s (the model's 2 s minimum applies): short, many requests
SOAK_RSS_EVERY = 500  # the node's VmRSS is sampled every this many soak requests
SOAK_MAX_CONSECUTIVE_LOST = 3  # unanswered requests in a row after which the node has stopped answering
ONE_MEGABYTE = 1_000_000  # the oversized soak request
SOAK_MIX = {  # share of each kind of soak request; everything but "good" must be refused
    "good": 0.70,
    "empty": 0.05,
    "whitespace": 0.05,
    "no_words": 0.05,
    "too_long": 0.05,
    "one_megabyte": 0.05,
    "invalid_utf8": 0.05,
}
SEED = 0


@dataclass(frozen=True)
class Counts:
    """How many of everything; --quick swaps in QUICK, --requests and --soak override."""

    latency_requests: int = 50  # timed per motion length and profile
    scaling_requests: int = 100  # timed per expert count (and again at the first count after the last)
    hot_swap_requests: int = 50  # timed before the swap (and half as many after it)
    hot_swap_bundles: int = 5  # dropped into the inbox, one every HOT_SWAP_INTERVAL_S
    caption_repeats: int = 20
    batch_repeats: int = 5  # of each side of the mixed-batch ratio
    decode_repeats: int = 50  # of each decoder
    install_repeats: int = 3  # hot installs and restarts
    soak: int = 5000
    scaling_counts: tuple[int, ...] = SCALING_COUNTS
    router_steps: int | None = None  # autoencoder training steps; None: the continual config's


QUICK = Counts(
    latency_requests=3,
    scaling_requests=3,
    hot_swap_requests=3,
    hot_swap_bundles=2,
    caption_repeats=2,
    batch_repeats=1,
    decode_repeats=3,
    install_repeats=1,
    soak=30,
    scaling_counts=(1, 4),
    router_steps=50,
)

# --- requests ----------------------------------------------------------------------------------------------


def serving_request(number: int, rng: np.random.Generator, seconds: int) -> str:
    """A request of one of the serving experts' families, in turn."""
    return family_request(FAMILY_NAMES[number % SERVING_EXPERTS], rng, seconds)


def tagged(number: int, text: str) -> str:
    """A refused soak request made unique, so its answer is never taken for another's (diagnostics name a
    request by its first characters, motion_agent.nodes.diagnostics.request_label). Good requests stay untagged:
    a tag would change what the routers see."""
    return f"[{number}] {text}"


def soak_plan(count: int, rng: np.random.Generator) -> list[str]:
    """The kinds of `count` soak requests, drawn with the SOAK_MIX shares (seeded: every run the same)."""
    kinds = list(SOAK_MIX)
    return [str(kind) for kind in rng.choice(kinds, size=count, p=[SOAK_MIX[k] for k in kinds])]
