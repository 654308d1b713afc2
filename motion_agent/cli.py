"""`motion-agent`: the user-facing command on the robot side.

Subcommands grow with the package; today `demo` runs a built-in motion through the whole motion
representation (kinematics -> HumanML3D features -> joints -> BVH and previews).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from motion_agent.config import ConfigError, config_dir, load_yaml
from motion_agent.demo import DEMO_KINDS, demo_motion
from motion_agent.export import ExportConfig, plot_stick_figures, write_bvh, write_obj
from motion_agent.features import FeatureConfig, canonicalize, joints_to_features, recover_joints

NOT_SERVING_NOTE = (
    "Note: the ROS 2 agent nodes are not part of this build yet, so nothing is served; this command\n"
    "writes demo motions through the motion representation instead."
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
            from motion_agent.body_mesh import body_mesh

            mesh = body_mesh(recovered, export_cfg.body_model_path, export_cfg.body_model_gender)
            summary[kind]["mesh"] = str(write_obj(out / f"{kind}_mid.obj", mesh.vertices[len(recovered) // 2], mesh.faces))
        print(f"{kind:>5}: {len(recovered)} frames, features -> joints error {error_mm:.4f} mm, wrote {bvh}")
    png = plot_stick_figures(previews, out / "demo.png", export_cfg.preview_frames, "demo motions (side view)")
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    print(f"preview: {png}\nsummary: {out / 'demo.json'}")
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
