"""Retargeting onto real robots (motion_agent/motion/robots): speed, accuracy and feasibility.

For the Unitree G1 and the Booster T1, in the whole-body and the upper-body mode, every probe motion (the
built-in demo motions of motion_agent/motion/demo.py, 4 s each) is retargeted with collision avoidance on,
and its trajectory replayed in MuJoCo:

- frames_per_s: motion frames (20 fps) retargeted per second of the retargeting thread's CPU time, median
  over the probe motions and repeats: everything `retarget` does (targets, one QP per frame, resampling,
  the controller rules, the feasibility replay). On 2 cores shared with other work, wall time also counts
  the waits for a core; it is reported as frames_per_s_wall.
- key_body_error_mm: hands, feet and head against the scaled human targets, median over frames and key
  bodies of each motion, then over the motions (p95 beside it);
- joint_limit_violations, self_collision_frames: summed over the probe motions;
- foot_slide_m_s: horizontal speed of a foot in contact with the floor, median, over the motions
  (whole body; the upper-body mode never moves the legs);
- jtc_valid: the fraction of trajectories a JointTrajectoryController accepts by every rule (stamped
  ahead, known joints, strictly increasing times, velocities agreeing with positions, zero at the end,
  within limits), each as generated and blended in from a displaced posture.

Beside the probe motions, the procedural corpus's actions (training/data/synth) show which motions a robot
can perform: per mode, how many are feasible and why the others are not (acrobatics reach the floor with
the hands, which a walking robot's retargeting does not plan for).

Run: python bench/bench_retarget.py [--repeats N] [--seconds S] [--out DIR]
Writes bench/results/retarget.json and retarget.png.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmark the source tree

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from motion_agent.motion.demo import DEMO_KINDS, demo_motion  # noqa: E402
from motion_agent.motion.robots.loader import load_retargeter  # noqa: E402
from training.data.synth.actions import ACTIONS  # noqa: E402
from training.data.synth.corpus import CorpusConfig, perform  # noqa: E402

from common import RESULTS_DIR, write_result  # noqa: E402

ROBOTS = {"g1": "unitree_g1", "t1": "booster_t1"}
MODES = ("whole_body", "upper_body")
FPS = 20.0
START_DELAY_S = 0.1  # as node.start_delay_s: the stamp the node puts on a trajectory
DISPLACED_RAD = 0.3  # the posture a blend starts from, this far from the motion's first posture
CORPUS_EMOTION = "neutral"


def _timed(retargeter, joints: np.ndarray, repeats: int):
    """(trajectory, frames per CPU second, frames per wall second), medians over `repeats` runs."""
    cpu, wall, trajectory = [], [], None
    for _ in range(repeats):
        started_cpu, started_wall = time.thread_time(), time.perf_counter()
        trajectory = retargeter.retarget(joints, fps=FPS)
        cpu.append(len(joints) / max(time.thread_time() - started_cpu, 1e-9))
        wall.append(len(joints) / max(time.perf_counter() - started_wall, 1e-9))
    return trajectory, statistics.median(cpu), statistics.median(wall)


def _accepted(retargeter, trajectory) -> bool:
    """Whether a controller takes the trajectory as generated and blended in from a displaced posture."""
    now = time.time()
    limits = retargeter.robot.limits.subset(trajectory.joint_names)
    signs = np.where(np.arange(len(trajectory.joint_names)) % 2, 1.0, -1.0)
    posture = np.clip(trajectory.positions[0] + DISPLACED_RAD * signs, limits.lower, limits.upper)
    blended = retargeter.start_from(trajectory, dict(zip(trajectory.joint_names, posture)))
    return all(
        not retargeter.controller_problems(candidate, now + START_DELAY_S, now) for candidate in (trajectory, blended)
    )


def probe(retargeter, seconds: float, repeats: int, progress) -> dict:
    """The figures of one robot in one mode over the probe motions."""
    rows = []
    for kind in DEMO_KINDS:
        trajectory, cpu, wall = _timed(retargeter, demo_motion(kind, seconds=seconds, fps=FPS), repeats)
        rows.append((kind, trajectory, cpu, wall, _accepted(retargeter, trajectory)))
        progress.update(1)
    feasibility = [t.feasibility for _, t, *_ in rows]
    figures = {
        "frames_per_s": statistics.median(r[2] for r in rows),
        "frames_per_s_wall": statistics.median(r[3] for r in rows),
        "key_body_error_mm": statistics.median(t.stats["key_body_error_mm"] for _, t, *_ in rows),
        "key_body_error_p95_mm": statistics.median(t.stats["key_body_error_p95_mm"] for _, t, *_ in rows),
        "joint_limit_violations": sum(f["joint_limit_violations"] for f in feasibility),
        "self_collision_frames": sum(f["self_collision_frames"] for f in feasibility),
        "floor_penetration_mm": max(f["floor_penetration_mm"] for f in feasibility),
        "max_joint_speed_ratio": max(f["max_joint_speed_ratio"] for f in feasibility),
        "jtc_valid": sum(r[4] for r in rows) / len(rows),
        "by_motion": {
            kind: {
                "frames_per_s": cpu,
                "key_body_error_mm": t.stats["key_body_error_mm"],
                "points": len(t.times),
                **{k: v for k, v in t.feasibility.items() if k != "colliding_bodies"},
            }
            for kind, t, cpu, _, _ in rows
        },
    }
    if retargeter.mode == "whole_body":
        figures["foot_slide_m_s"] = statistics.median(f["foot_slide_m_s"] for f in feasibility)
    return figures


def corpus(retargeter, seconds: float, progress) -> dict:
    """Which of the corpus's actions the robot performs feasibly in this mode, and why not the others."""
    infeasible = {}
    for action in sorted(ACTIONS):
        joints = perform(action, CORPUS_EMOTION, seconds, np.random.default_rng(0), CorpusConfig())
        report = retargeter.retarget(joints, fps=FPS).feasibility
        progress.update(1)
        if not report["feasible"]:
            reasons = []
            if report["floor_penetration_mm"] > 0:
                reasons.append(f"{report['floor_penetration_mm']:.0f} mm into the floor")
            if report["self_collision_frames"]:
                reasons.append(
                    f"{report['self_collision_frames']} self-collision frames ({report['colliding_bodies']})"
                )
            if report["joint_limit_violations"]:
                reasons.append(f"{report['joint_limit_violations']} limit violations")
            infeasible[action] = "; ".join(reasons) or "too fast"
    return {"actions": len(ACTIONS), "feasible": len(ACTIONS) - len(infeasible), "infeasible": infeasible}


def plot(results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, speed, error = [], [], []
    for short in ROBOTS:
        for mode in MODES:
            figures = results[short] if mode == "whole_body" else results[short]["upper_body"]
            labels.append(f"{short}\n{mode.replace('_', ' ')}")
            speed.append(figures["frames_per_s"])
            error.append(figures["key_body_error_mm"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(labels, speed, color="#4477aa")
    left.axhline(1000, color="gray", linestyle="--", label="target 1000")
    left.set_title("frames retargeted per CPU second")
    left.legend()
    right.bar(labels, error, color="#cc6677")
    right.axhline(30, color="gray", linestyle="--", label="target 30 mm")
    right.set_title("key-body error, median (mm)")
    right.legend()
    figure.suptitle("IK retargeting, demo motions, collision avoidance on")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per probe motion (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each motion (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: bench/results)")
    parser.add_argument("--no-corpus", action="store_true", help="skip the corpus survey")
    args = parser.parse_args(argv)

    steps = len(ROBOTS) * len(MODES) * (len(DEMO_KINDS) + (0 if args.no_corpus else len(ACTIONS)))
    results: dict = {}
    with tqdm(total=steps, desc="retarget", unit="motion") as progress:
        for short, robot in ROBOTS.items():
            for mode in MODES:
                retargeter = load_retargeter(robot, mode)
                figures = probe(retargeter, args.seconds, args.repeats, progress)
                if not args.no_corpus:
                    figures["corpus"] = corpus(retargeter, args.seconds, progress)
                if mode == "whole_body":
                    results[short] = {**figures, "robot": robot, "joints": len(retargeter.joint_names)}
                else:
                    results[short]["upper_body"] = {**figures, "joints": len(retargeter.joint_names)}
    results["probe_motions"] = list(DEMO_KINDS)
    results["motion_seconds"] = args.seconds
    results["timing_doc"] = (
        "frames_per_s: motion frames per second of the retargeting thread's CPU time (time.thread_time), "
        "median over probe motions and repeats; frames_per_s_wall counts the waits for a shared core too"
    )
    folder = args.out or RESULTS_DIR
    path = write_result("retarget", results, folder)
    png = plot(results, Path(folder) / "retarget.png")
    print(
        f"\n{'robot':<4} {'mode':<11} {'frames/s':>9} {'wall':>7} {'key mm':>7} {'limits':>6} {'collide':>7} "
        f"{'slide m/s':>9} {'jtc':>4} {'corpus feasible':>16}"
    )
    for short in ROBOTS:
        for mode in MODES:
            f = results[short] if mode == "whole_body" else results[short]["upper_body"]
            slide = f"{f['foot_slide_m_s']:.3f}" if "foot_slide_m_s" in f else "-"
            survey = f"{f['corpus']['feasible']}/{f['corpus']['actions']}" if "corpus" in f else "-"
            print(
                f"{short:<4} {mode:<11} {f['frames_per_s']:>9.0f} {f['frames_per_s_wall']:>7.0f} "
                f"{f['key_body_error_mm']:>7.1f} {f['joint_limit_violations']:>6} {f['self_collision_frames']:>7} "
                f"{slide:>9} {f['jtc_valid']:>4.2f} {survey:>16}"
            )
    print(f"results: {path}\nplot: {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
