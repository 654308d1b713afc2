"""caption: MotionAgent.caption in this process (not over topics) on a 2 s, 40-frame pose window."""

from __future__ import annotations

from runtime.context import Bench
from runtime.stats import percentiles, time_side_by_side
from runtime.workload import CAPTION_SECONDS, SERVING_EXPERTS


def part_caption(bench: Bench) -> dict:
    """MotionAgent.caption on a 2 s window in this process: the model's cost, without the pose stream."""
    from motion_agent.motion.demo import demo_motion

    agent = bench.agent()
    window = demo_motion("walk", seconds=CAPTION_SECONDS)
    times = time_side_by_side({"caption": lambda: agent.caption(window)}, bench.counts.caption_repeats, "caption")[
        "caption"
    ]
    return {
        "caption_latency_ms": {**percentiles(times), "frames": len(window)},
        "caption_doc": (
            f"In process (MotionAgent.caption, not over topics) on a {len(window)}-frame walk "
            f"(motion_agent.motion.demo), {SERVING_EXPERTS} experts installed: encode, route, caption."
        ),
    }


# --- ratios ------------------------------------------------------------------------------------
