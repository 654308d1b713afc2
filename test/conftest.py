"""Test-wide settings: every test process talks ROS 2 on its own domain, on loopback only, so that
parallel runs on one machine (or a developer's own ROS 2 graph) never hear each other."""

import os

os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from motion_agent.nodes.launcher import stop_node  # noqa: E402
from training.synthetic_experts import family_requests, write_expert  # noqa: E402, F401  (tests import them from here)

TINY_CODEBOOK = 32


def build_tiny_base_model(root: Path) -> Path:
    """A corpus, a small tokenizer and a briefly trained `tiny` base model under `root`; returns the
    base-model folder (what `motion-agent-train base` writes). The recipe of test_language_model's
    `base_dir`, cut further (40 motions, 20 tokenizer steps, 4 base steps): tests of the agent and its
    nodes need the files and the plumbing, not a model that has learned anything. About 15 s on 2 cores."""
    from motion_agent.model.tokenizer import TokenizerConfig
    from training.base.train import BaseRunConfig, BaseTrainingConfig, train_base
    from training.data.synth.corpus import CorpusConfig, write_corpus
    from training.tokenizer.cli import load_humanml3d
    from training.tokenizer.train import TrainingOptions, train_tokenizer

    write_corpus(root / "corpus", CorpusConfig(motions=40, seed=0))
    data = load_humanml3d(root / "corpus", 32)
    train_tokenizer(
        data.train,
        data.val,
        TokenizerConfig(codebook_size=TINY_CODEBOOK, code_dim=16, width=32, depth=1),
        root / "tok",
        20,
        8,
        32,
        3e-3,
        0,
        resume=False,
        options=TrainingOptions(warmup_steps=5, checkpoint_every=1000, val_every=0),
        mean=data.mean,
        std=data.std,
        progress=False,
    )
    config = BaseTrainingConfig(training=BaseRunConfig(steps=4, batch_size=4, log_every=4, val_batches=1))
    train_base(root / "corpus", root / "tok" / "tokenizer", root / "base", config, progress=False)
    return root / "base"


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory) -> Path:
    """The folder of a tiny base model, built once per test session (see build_tiny_base_model)."""
    return build_tiny_base_model(tmp_path_factory.mktemp("tiny_base"))


EXPERT_FAMILIES = ("juggling", "piano", "swimming")  # of training.synthetic_experts.FAMILIES


@pytest.fixture(scope="session")
def expert_bundles(tiny_base_model, tmp_path_factory):
    """(keyring folder, {family: signed bundle}) for three experts of the tiny base model (juggling,
    piano, swimming), each with an autoencoder router fitted on its request family
    (training.synthetic_experts, which the runtime benchmark makes its experts with too)."""
    from training.synthetic_experts import ExpertMaker, Signer

    root = tmp_path_factory.mktemp("expert_bundles")
    signer = Signer.create(root)
    maker = ExpertMaker(tiny_base_model, root, signer)
    bundles = {family: maker.bundle(family, family, seed) for seed, family in enumerate(EXPERT_FAMILIES)}
    return signer.keyring, bundles


stop_process = partial(stop_node, grace_s=30.0)  # a node or launcher child, stopped as a user would
REPO = Path(__file__).resolve().parent.parent


def start_launch(log: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`motion-agent launch ARGS` in a child process, as a user starts it; its output goes to `log`,
    which the process carries as `.log` for failure messages."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "motion_agent.cli", "launch", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env or os.environ.copy(),
        )
    process.log = log
    return process


@pytest.fixture(scope="module")
def ros():
    """rclpy, initialised for the test module that talks to nodes over real topics."""
    rclpy = pytest.importorskip("rclpy")
    rclpy.init()
    yield rclpy
    rclpy.try_shutdown()


TIMEOUT = 60.0  # seconds a node over topics gets to answer


class Harness:
    """The motion node in process (a real MotionAgent on the config's base model) and a client node on
    its test topics: `test_text` requests, `test_deploy` bundle paths, `test_diagnostics` statuses."""

    def __init__(self, rclpy, config_path):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from std_msgs.msg import String

        from motion_agent.nodes.motion_node import MotionNode

        self.node = MotionNode(parameter_overrides=[Parameter("config", value=str(config_path))])
        self.client = rclpy.create_node("expert_manager_test_client")
        self.statuses = []
        self.client.create_subscription(
            DiagnosticArray, "test_diagnostics", lambda m: self.statuses.extend(m.status), 100
        )
        self.deploy = self.client.create_publisher(String, "test_deploy", 10)
        self.text = self.client.create_publisher(String, "test_text", 10)
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.spin_until(lambda: self.deploy.get_subscription_count() and self.text.get_subscription_count())

    def spin_until(self, predicate, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            self.executor.spin_once(timeout_sec=0.05)
        raise AssertionError(f"timed out after {timeout} s")

    def status(self, name_part, level, **expected):
        from motion_agent.nodes.messages import level_name, status_values

        for status in self.statuses:
            values = status_values(status)
            if (
                name_part in status.name
                and level_name(status) == level
                and all(values.get(k) == v for k, v in expected.items())
            ):
                return values
        return None

    def close(self):
        self.node.close()
        self.executor.shutdown()
        self.node.destroy_node()
        self.client.destroy_node()
