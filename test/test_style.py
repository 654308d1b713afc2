"""The project's habits hold: ruff's lint and format, and the import-linter layer contracts of setup.cfg
(docs/architecture.md explains the layers). `make test` runs the three tools before pytest; these tests
show that the contracts bite: an import that breaks a layer fails `lint-imports`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPIED = ("motion_agent", "training", "setup.cfg")


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed (dev extra)")
    return str(path)


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the checkout at `root`, resolving the packages there, not the installed ones."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [tool("lint-imports"), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The runtime and training packages with the layer contracts, without the embedded model blobs."""
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("embedded", "__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    return tmp_path


def test_ruff_lint_and_format_pass():
    ruff = tool("ruff")
    for command in ([ruff, "check", "--no-cache", "."], [ruff, "format", "--check", "--no-cache", "."]):
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_layer_contracts_hold(checkout):
    result = lint_imports(checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("motion_agent/agent.py", "import rclpy", "Only motion_agent.nodes imports rclpy and ROS messages"),
        ("motion_agent/model/backbone.py", "import training.cli", "The runtime never imports training"),
        ("motion_agent/bundles/manifest.py", "import torch", "motion_agent.bundles (verification on the robot)"),
        ("motion_agent/motion/skeleton.py", "import motion_agent.model.tokenizer", "motion_agent.motion (bodies"),
        ("motion_agent/model/language_model.py", "import motion_agent.agent", "Runtime layers"),
    ],
)
def test_an_import_across_a_layer_fails_lint_imports(checkout, module, line, contract):
    path = checkout / module
    path.write_text(path.read_text() + f"\n{line}  # breaks a contract\n")
    result = lint_imports(checkout)
    assert result.returncode != 0 and "0 broken" not in result.stdout, result.stdout
    _, _, broken = result.stdout.partition("Broken contracts")
    assert contract in broken and module.removesuffix(".py").replace("/", ".") in broken, result.stdout
