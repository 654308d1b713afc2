"""`motion-agent`: the user-facing command on the robot side.

  demo    a built-in motion through the whole motion representation (kinematics -> HumanML3D
          features -> joints -> BVH and previews); needs no model and serves nothing
  launch  the agent's node set (motion_agent.nodes.node_set.NODE_SET) as child processes, for machines
          without the ROS 2 launch tool
  say     publish one request to a running agent, wait for its motion, write JSON, BVH and 3D previews
          (an animated GIF and a key-frame PNG), and with --mcap record the exchange for Foxglove
          (--robot g1: also a picture of a real robot performing it, and its feasibility report)
  view    a live viewer of a running agent in the web browser (motion_agent.nodes.viewer)
  retarget  a built-in or saved motion onto a real robot (G1, T1): trajectory, feasibility report, picture
  caption   motion files (BVH, AMASS-style SMPL .npz, HumanML3D .npy) captioned by the agent's model

rclpy is imported inside `say` and `view` only (through motion_agent.nodes), so the package imports without ROS 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from motion_agent.config import ConfigError, config_dir, load_yaml
from motion_agent.motion.demo import DEMO_KINDS, demo_motion
from motion_agent.motion.export import ExportConfig, write_bvh, write_obj
from motion_agent.motion.features import FeatureConfig, canonicalize, joints_to_features, recover_joints
from motion_agent.motion.preview import plot_stick_figures
from motion_agent.nodes.settings import VIEW_HOST, VIEW_PORT

NOT_SERVING_NOTE = (
    "Note: `demo` only writes built-in motions through the motion representation; nothing is served.\n"
    "Start the agent nodes with `motion-agent launch --base-model DIR`."
)


def _demo(args: argparse.Namespace) -> int:
    features_cfg = load_yaml(FeatureConfig, args.config, section="features")
    export_cfg = load_yaml(ExportConfig, args.config, section="export")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict] = {}
    previews: dict[str, np.ndarray] = {}
    for kind in args.kind:
        joints = demo_motion(kind, seconds=args.seconds, fps=features_cfg.fps)
        features = joints_to_features(joints, features_cfg)
        recovered = recover_joints(torch.as_tensor(features, dtype=torch.float64)).numpy()
        reference = canonicalize(joints, features_cfg).numpy()[:-1]
        error_mm = float(np.linalg.norm(recovered - reference, axis=-1).mean() * 1000)
        np.save(out / f"{kind}_features.npy", features)
        bvh = write_bvh(out / f"{kind}.bvh", recovered, fps=features_cfg.fps)
        previews[f"{kind}"] = recovered
        summary[kind] = {"frames": len(recovered), "round_trip_error_mm": error_mm, "bvh": str(bvh)}
        if export_cfg.body_model_path:
            from motion_agent.motion.body_mesh import body_mesh

            mesh = body_mesh(recovered, export_cfg.body_model_path, export_cfg.body_model_gender)
            summary[kind]["mesh"] = str(
                write_obj(out / f"{kind}_mid.obj", mesh.vertices[len(recovered) // 2], mesh.faces)
            )
        print(f"{kind:>5}: {len(recovered)} frames, features -> joints error {error_mm:.4f} mm, wrote {bvh}")
    png = plot_stick_figures(previews, out / "demo.png", export_cfg.preview_frames, "demo motions", features_cfg.fps)
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    print(f"preview: {png}\nsummary: {out / 'demo.json'}")
    return 0


def _launch(args: argparse.Namespace) -> int:
    from motion_agent.nodes.launcher import launch, launch_parameters
    from motion_agent.nodes.settings import resolve_settings

    if args.base_model and not Path(args.base_model).expanduser().is_dir():
        raise FileNotFoundError(f"base model folder {args.base_model} does not exist")
    # Resolve the settings here as the nodes will, so a typo or a missing model is one line from the
    # launcher rather than one per node.
    config = args.config or str(config_dir() / "agent.yaml")
    agent, _ = resolve_settings(config, args.base_model or "")
    if not agent.base_model:
        raise ConfigError(
            f"no base model: pass --base-model DIR or set agent.base_model in {config} "
            "(this installation has no embedded default model)"
        )
    return launch(launch_parameters(args.config, args.base_model, args.frame_id), say=lambda m: print(m, flush=True))


def _say(args: argparse.Namespace) -> int:
    from motion_agent.nodes.settings import load_node_config

    node_config = load_node_config(args.config)  # topics; the default is the installed agent.yaml
    try:
        from motion_agent.nodes.say import SayError, say
    except ImportError as error:
        raise ConfigError(f"`say` needs ROS 2 (rclpy and the message packages): {error}") from error
    robot = args.robot
    if robot is None:  # the agent's own robot, when it is a real one
        from motion_agent.agent import load_agent_config
        from motion_agent.motion.robots.loader import is_real_robot

        configured = load_agent_config(args.config or config_dir() / "agent.yaml").robot
        robot = configured if is_real_robot(configured) else None
    try:
        say(args.text, args.out, args.timeout, node_config, args.mcap, robot)
    except SayError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _retarget(args: argparse.Namespace) -> int:
    from motion_agent.motion.robots.export import summary, write_robot_files
    from motion_agent.motion.robots.loader import is_real_robot, load_retargeter

    if not is_real_robot(args.robot):
        raise ConfigError(f"robot {args.robot!r} is a joint map; retarget draws real robots (g1, t1)")
    retargeter = load_retargeter(args.robot, args.mode or "")
    if args.joints:
        joints, title = np.load(args.joints), Path(args.joints).stem
    else:
        joints, title = demo_motion(args.kind, seconds=args.seconds, fps=args.fps), f"demo {args.kind}"
    trajectory = retargeter.retarget(joints, fps=args.fps)
    files = write_robot_files(retargeter, trajectory, args.out, title)
    stats = trajectory.stats
    print(
        f"{retargeter.config.name} ({retargeter.mode}): {len(joints)} frames -> {len(trajectory.times)} points "
        f"over {trajectory.times[-1]:.2f} s for {len(trajectory.joint_names)} joints; key bodies within "
        f"{stats['key_body_error_mm']:.1f} mm (median) of the scaled human"
    )
    print(summary(trajectory.feasibility))
    print("\n".join(f"{kind}: {path}" for kind, path in files.items()))
    return 0 if trajectory.feasibility["feasible"] else 2


def _view(args: argparse.Namespace) -> int:
    from motion_agent.nodes.settings import load_node_config

    node_config = load_node_config(args.config)
    try:
        from motion_agent.nodes.viewer import view
    except ImportError as error:
        raise ConfigError(f"`view` needs ROS 2 (rclpy and the message packages): {error}") from error
    return view(node_config, args.host, args.port)


def _caption(args: argparse.Namespace) -> int:
    from motion_agent.agent import MotionAgent
    from motion_agent.motion.readers import read_motion
    from motion_agent.nodes.settings import resolve_settings

    config = args.config or str(config_dir() / "agent.yaml")
    agent_config, _ = resolve_settings(config, args.base_model or "")
    if not agent_config.base_model:
        raise ConfigError(f"no base model: pass --base-model DIR or set agent.base_model in {config}")
    agent = MotionAgent.from_config(agent_config)
    window, shortest = agent_config.max_caption_frames, agent_config.min_caption_frames
    results = []
    for path in args.files:
        joints, info = read_motion(path)
        if len(joints) < shortest:
            raise ValueError(f"{path}: {len(joints)} frames at 20 fps; captioning needs at least {shortest}")
        starts = list(range(0, max(len(joints) - shortest, 0) + 1, window)) if args.windows else [0]
        for start in starts:
            clip = joints[start : start + window] if args.windows else joints
            result = agent.caption(clip)
            seconds = (start / 20.0, (start + len(clip)) / 20.0)
            results.append({"file": str(path), "seconds": seconds, "caption": result.caption, "expert": result.expert,
                            "read": info})  # fmt: skip
            print(f"{path} [{seconds[0]:.1f}-{seconds[1]:.1f} s, {result.expert}]: {result.caption}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motion-agent", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="write built-in motions as HumanML3D features, BVH and a stick-figure PNG",
        description="Run built-in joint-angle programs through forward kinematics, HumanML3D's 263-dim "
        "features and back, and write BVH files (Blender/Unity), the features (.npy) and a preview PNG.",
    )
    demo.add_argument("--out", default="out/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--kind", nargs="+", choices=DEMO_KINDS, default=list(DEMO_KINDS), help="motions to write")
    demo.add_argument("--seconds", type=float, default=3.0, help="length of each motion (default: %(default)s)")
    demo.add_argument("--config", default=str(config_dir() / "motion.yaml"), help="motion config YAML")
    demo.set_defaults(func=_demo)

    launch = sub.add_parser(
        "launch",
        help="start the agent's ROS 2 nodes without the ROS 2 launch tool",
        description="Start every node of motion_agent.nodes.node_set.NODE_SET as a child process "
        "(python -m MODULE --ros-args -p config:=... -p base_model:=...), forward SIGINT/SIGTERM to them "
        "and exit when they exit.",
    )
    launch.add_argument("--config", help="agent YAML (default: the package's config/agent.yaml)")
    launch.add_argument("--base-model", help="base-model folder from `motion-agent-train base` (overrides the YAML)")
    launch.add_argument("--frame-id", help="header frame of trajectories and markers (overrides the YAML)")
    launch.set_defaults(func=_launch)

    say = sub.add_parser(
        "say",
        help="publish a text request, wait for the motion, write its trajectory (JSON), BVH and 3D previews",
        description="Publish TEXT on the agent's text_command topic, wait for the JointTrajectory and skeleton it "
        "answers with (and the request's diagnostic), and write OUT/trajectory.json (robot joints), "
        "OUT/trajectory.png (joint angles), OUT/motion.bvh (SMPL skeleton), OUT/motion.gif (3D preview) and "
        "OUT/keyframes.png (key frames). Exits 1 with one line when the agent refuses the request or nothing "
        "answers in time.",
    )
    say.add_argument("text", help='what the robot should do, e.g. "wave happily for 3 seconds"')
    say.add_argument("--out", default="out/say", help="output folder (default: %(default)s)")
    say.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the agent (default: %(default)s)")
    say.add_argument("--config", help="agent YAML whose node section names the topics (default: the package's)")
    say.add_argument(
        "--mcap",
        metavar="FILE",
        help="also record every message sent and received as an MCAP file for Foxglove (needs the record extra)",
    )
    say.add_argument(
        "--robot",
        help="also draw a real robot performing the motion (g1, t1, or a robot YAML) with its feasibility "
        "report (default: agent.robot when it is a real robot)",
    )
    say.set_defaults(func=_say)

    retarget = sub.add_parser(
        "retarget",
        help="retarget a built-in or saved motion onto a real robot: trajectory, feasibility report, picture",
        description="Retarget a motion ((frames, 22, 3) SMPL joint positions: a built-in demo motion, or an .npy "
        "file) onto a real robot by inverse kinematics and write OUT/robot_trajectory.json, OUT/feasibility.json "
        "and OUT/robot.png. Exits 2 when the motion is not feasible for the robot.",
    )
    retarget.add_argument("--robot", default="g1", help="g1, t1, or a robot YAML (default: %(default)s)")
    retarget.add_argument("--mode", choices=("whole_body", "upper_body"), help="default: the robot's own")
    retarget.add_argument("--kind", choices=DEMO_KINDS, default="walk", help="built-in motion (default: %(default)s)")
    retarget.add_argument("--joints", help=".npy file of (frames, 22, 3) joint positions instead of a built-in")
    retarget.add_argument("--fps", type=float, default=20.0, help="frame rate of the motion (default: %(default)s)")
    retarget.add_argument("--seconds", type=float, default=4.0, help="length of a built-in (default: %(default)s)")
    retarget.add_argument("--out", default="out/retarget", help="output folder (default: %(default)s)")
    retarget.set_defaults(func=_retarget)

    caption = sub.add_parser(
        "caption",
        help="caption motion files (BVH, AMASS-style SMPL .npz, HumanML3D .npy) with the agent's model",
        description="Read each FILE into the 22 SMPL joints (metres, +Y up, 20 fps, on the floor: "
        "motion_agent.motion.readers) and caption it as the agent captions observed poses, routed to an "
        "expert or 'base'. A clip longer than agent.max_caption_frames is captioned by its last frames, or "
        "window by window with --windows.",
    )
    caption.add_argument("files", nargs="+", metavar="FILE", help=".bvh, .npz (poses, trans, frame rate) or .npy")
    caption.add_argument("--base-model", help="base-model folder (default: agent.base_model, else the embedded one)")
    caption.add_argument("--config", help="agent YAML (default: the package's config/agent.yaml)")
    caption.add_argument("--windows", action="store_true", help="caption a long clip window by window")
    caption.add_argument("--json", metavar="FILE", help="also write every caption as JSON")
    caption.set_defaults(func=_caption)

    view = sub.add_parser(
        "view",
        help="watch the agent live in a web browser: its motions in 3D, a box to send requests",
        description="Serve a page (viser, the view extra; nothing is fetched from the internet) that shows every "
        "motion the running agent publishes, playing in 3D with its request and expert, the observed poses and "
        "captions, and sends requests typed into it. Runs until Ctrl-C.",
    )
    view.add_argument(
        "--host", default=VIEW_HOST, help="address to serve on; 0.0.0.0: every network (default: %(default)s)"
    )
    view.add_argument("--port", type=int, default=VIEW_PORT, help="port of the page (default: %(default)s)")
    view.add_argument("--config", help="agent YAML whose node section names the topics (default: the package's)")
    view.set_defaults(func=_view)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        print(NOT_SERVING_NOTE)
    try:
        return args.func(args)
    except (ConfigError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
