"""The package as users get it: importable without ROS 2, and built by colcon into the layout
`ros2 launch` / `ros2 run` expect."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

BLOCK_ROS = """
import importlib.abc, sys
class NoRos(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'rclpy', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'trajectory_msgs',
                                  'visualization_msgs', 'diagnostic_msgs', 'launch', 'launch_ros'}:
            raise ImportError('ROS 2 is not installed here')
sys.meta_path.insert(0, NoRos())
"""


def _runtime_modules() -> list[str]:
    return sorted("motion_agent." + p.stem for p in (ROOT / "motion_agent").glob("*.py") if p.stem != "__init__")


def test_runtime_and_training_import_without_ros():
    imports = "; ".join(f"import {m}" for m in ["motion_agent", "training", *_runtime_modules()])
    result = subprocess.run([sys.executable, "-c", BLOCK_ROS + imports], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_runtime_never_imports_training_or_ros():
    for path in (ROOT / "motion_agent").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"training", "rclpy"}, f"{path.name} imports {name}"


def _console_scripts() -> list[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return [ast.literal_eval(e).split("=")[0].strip() for e in value.elts]
    raise AssertionError("setup.py declares no console_scripts")


@pytest.mark.slow
def test_colcon_build_installs_the_ros2_layout(tmp_path):
    colcon = Path(sys.executable).parent / "colcon"
    assert colcon.exists(), "colcon-core and colcon-ros come with the dev extra"
    source = tmp_path / "src" / "motion_agent"
    ignore = shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "out", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, ignore=ignore)
    result = subprocess.run(
        [
            str(colcon),
            "--log-base",
            str(tmp_path / "log"),
            "build",
            "--base-paths",
            str(tmp_path / "src"),
            "--build-base",
            str(tmp_path / "build"),
            "--install-base",
            str(tmp_path / "install"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = tmp_path / "install" / "motion_agent"
    share = prefix / "share" / "motion_agent"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "motion_agent").is_file()
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "agent.launch.py").is_file()
    for config in (ROOT / "config").rglob("*.yaml"):
        assert (share / config.relative_to(ROOT)).is_file(), f"{config.relative_to(ROOT)} not installed"
    from motion_agent.nodes.node_set import NODE_SET

    executables = set(_console_scripts()) | {spec.executable for spec in NODE_SET}
    for name in executables:
        exe = prefix / "lib" / "motion_agent" / name
        assert exe.is_file() and exe.stat().st_mode & 0o111, f"{name} is not installed in lib/motion_agent"
    site = next((prefix / "lib").glob("python3*/site-packages"))
    modules = [f.relative_to(ROOT) for package in ("motion_agent", "training") for f in (ROOT / package).rglob("*.py")]
    missing = [str(m) for m in modules if not (site / m).is_file()]
    assert modules and not missing, f"modules not installed: {missing[:3]}"
    embedded = [f for f in (ROOT / "motion_agent" / "embedded").rglob("*") if f.is_file() and f.name != ".lock"]
    missing = [str(f.relative_to(ROOT)) for f in embedded if not (site / f.relative_to(ROOT)).is_file()]
    assert embedded and not missing, f"embedded model files not installed: {missing[:3]}"
