"""One way in for every robot: `load_retargeter(name)` gives the retargeter that `agent.robot` names.

A robot YAML with a `description` key is a real robot, retargeted by inverse kinematics (ik.py, needs
the `robots` extra); any other is a robot map (motion_agent.motion.retarget: `smpl_avatar`,
`humanoid_25dof`). Real robots also answer to their `aliases` (`g1` for `unitree_g1`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from motion_agent.config import ConfigError, config_dir, parse_yaml
from motion_agent.motion.retarget import ROBOTS_DIR, Retargeter, available_robots, load_robot, robot_path
from motion_agent.motion.robots.config import MODES, load_ik_robot
from motion_agent.motion.robots.description import ROBOTS_EXTRA


def _read(path: Path) -> dict:
    try:
        data = parse_yaml(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read robot {path}: {error}") from error
    return data if isinstance(data, dict) else {}


def aliases() -> dict[str, str]:
    """alias -> shipped robot name, for every shipped real robot."""
    found = {}
    for path in sorted((config_dir() / ROBOTS_DIR).glob("*.yaml")):
        for alias in _read(path).get("aliases", []) or []:
            found[str(alias)] = path.stem
    return found


def resolve(name_or_path: str | Path) -> Path:
    """The YAML of a robot named by name, alias or path."""
    text = str(name_or_path)
    return robot_path(aliases().get(text, text))


def is_real_robot(name_or_path: str | Path) -> bool:
    """Whether the robot's YAML describes a real robot (a `description` key) rather than a map."""
    return "description" in _read(resolve(name_or_path))


def load_retargeter(name_or_path: str | Path, mode: str = ""):
    """The retargeter of a robot: an `IKRetargeter` for a real robot (in `mode`, default: the robot's
    own), a `Retargeter` for a robot map (which has no modes)."""
    path = resolve(name_or_path)
    if mode and mode not in MODES:
        raise ConfigError(f"robot mode {mode!r} must be one of {', '.join(MODES)} (or empty: the robot's own)")
    if not is_real_robot(path):
        if mode:
            raise ConfigError(
                f"robot {path.stem!r} is a joint map without modes; modes are for real robots "
                f"({', '.join(sorted(set(aliases().values()))) or 'none shipped'})"
            )
        return Retargeter(load_robot(path))
    config = load_ik_robot(path)
    try:
        from motion_agent.motion.robots.ik import IKRetargeter
    except ImportError as error:
        raise ConfigError(f"robot {config.name!r} needs MuJoCo and mink: {ROBOTS_EXTRA} ({error})") from error
    return IKRetargeter(config, mode)


__all__ = ["aliases", "available_robots", "is_real_robot", "load_retargeter", "resolve"]
