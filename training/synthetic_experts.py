"""Synthetic experts, made as training makes a moe-hard expert but without training one: for tests and
benchmarks, which need real expert folders and signed bundles, not experts that learned anything.

An expert here is a peft LoRA adapter with random, non-zero weights (`init_lora_weights=False`), an
autoencoder router (training.continual.router_training.fit_autoencoder) fitted on the prompt features of
one request family (FAMILIES: clearly different activities, so routers tell them apart), and eval.json;
`ExpertMaker` signs it into a bundle (motion_agent.bundles.archive.pack_bundle) with a `Signer`'s key, and
`install_into` installs bundles into an expert store through its verified path. What an `ExpertRecipe`
fixes: the LoRA's shape, the router's settings and the directions it routes (`small` for tests,
`continual` for the runtime benchmark: the shape config/training/continual.yaml gives every expert).

Offline code: motion_agent never imports it (the runtime does not carry test fabrication).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

# Clearly different request families: each expert's router is fitted on one, and requests drawn from a
# family are routed to an expert of it (hard routing runs that one expert).
FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "waving": (("a person", "someone", "a child"), ("waves hello", "waves both arms", "waves goodbye")),
    "juggling": (
        ("a juggler", "the performer", "a clown"),
        ("juggles three balls", "tosses clubs in the air", "juggles rings"),
    ),
    "piano": (
        ("a pianist", "the musician", "an artist"),
        ("plays the piano", "presses piano keys", "performs a sonata on a piano"),
    ),
    "swimming": (
        ("a swimmer", "the athlete", "a diver"),
        ("swims breaststroke", "dives into the pool", "floats on water"),
    ),
    "boxing": (("a boxer", "the fighter", "a man"), ("throws punches", "jabs and ducks", "shadow boxes")),
    "dancing": (("a dancer", "the woman", "a girl"), ("dances a waltz", "spins and twirls", "dances hip hop")),
    "walking": (("a pedestrian", "an old man", "a hiker"), ("walks forward", "walks in a circle", "walks upstairs")),
    "jumping": (("an athlete", "a kid", "the player"), ("jumps in place", "does jumping jacks", "leaps forward")),
}
FAMILY_NAMES = tuple(FAMILIES)
MOODS = ("happily", "sadly", "angrily", "calmly", "nervously", "proudly")
ROUTER_PROMPTS = 160  # prompts per family and direction a router is fitted on
FIRST_VERSION = "1.0.0"


def family_request(family: str, rng: np.random.Generator, seconds: int | None = None) -> str:
    """'a person waves hello happily' ('... for 4 seconds' given `seconds`)."""
    subjects, verbs = FAMILIES[family]
    text = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(MOODS)}"
    return text if seconds is None else f"{text} for {seconds} seconds"


def family_requests(family: str, count: int, seed: int) -> list[str]:
    """`count` requests of one family, drawn with `seed` (the same list every time)."""
    rng = np.random.default_rng(seed)
    return [family_request(family, rng) for _ in range(count)]


@dataclass(frozen=True)
class Signer:
    """A release key made for one run and the keyring folder that trusts it."""

    key: Path
    keyring: Path

    @classmethod
    def create(cls, folder: Path, name: str = "release") -> Signer:
        """`folder`/NAME.key (and .pub) and `folder`/keyring/NAME.pub."""
        from motion_agent.bundles.keys import generate_keypair

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _, public, _ = generate_keypair(folder / f"{name}.key")
        (folder / "keyring").mkdir()
        shutil.copy(public, folder / "keyring" / f"{name}.pub")
        return cls(folder / f"{name}.key", folder / "keyring")


@dataclass(frozen=True)
class ExpertRecipe:
    """What a synthetic expert is made of: its LoRA (peft LoraConfig keyword arguments), its router's
    settings (AutoencoderSettings; its seed is offset by each expert's), the directions the router covers
    (t2m: a family's requests; m2t: prompts of random motion codes) and how many prompts per direction."""

    lora: dict[str, Any] = field(
        default_factory=lambda: {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    )
    router: Any = None  # AutoencoderSettings; None: 400 steps, thresholds cross-fitted in 3 folds (small())
    directions: tuple[str, ...] = ("t2m",)
    prompts: int = ROUTER_PROMPTS

    @classmethod
    def small(cls) -> ExpertRecipe:
        """Tests: a rank-4 LoRA on q/v, a T2M router of 400 steps with 3-fold cross-fitted thresholds."""
        return cls()

    @classmethod
    def continual(cls, router_steps: int | None = None) -> ExpertRecipe:
        """The runtime benchmark: the LoRA every continual moe-hard expert has, routers of both directions
        with the continual config's settings, but thresholds from training losses (folds=1): these
        routers measure cost, and 64 experts' cross-fitting would take longer than the benchmark itself."""
        from training.continual.config import load_continual_config

        config = load_continual_config()
        lora = config.lora.peft_config()
        router = replace(config.router.autoencoder, folds=1)
        if router_steps is not None:
            router = replace(router, steps=router_steps)
        keys = ("r", "lora_alpha", "lora_dropout", "target_modules", "task_type")
        return cls(lora={k: getattr(lora, k) for k in keys}, router=router, directions=("t2m", "m2t"))

    def peft_config(self):
        from peft import LoraConfig

        lora = dict(self.lora)
        if isinstance(lora.get("target_modules"), (set, tuple)):
            lora["target_modules"] = sorted(lora["target_modules"])
        return LoraConfig(**lora, init_lora_weights=False)

    def router_settings(self, seed: int):
        """The router's AutoencoderSettings for the expert of `seed`."""
        router = self.router
        if router is None:
            from training.continual.router_training import AutoencoderSettings

            router = AutoencoderSettings(steps=400, folds=3)
        return replace(router, seed=router.seed + seed)


def router_features(lm, family: str, seed: int, recipe: ExpertRecipe) -> dict[str, np.ndarray]:
    """Prompt features per direction a router of `family` is fitted on, drawn with `seed`: the family's
    requests (T2M) and M2T prompts of random motion codes (routing cost, not quality, is what those
    serve). No durations: the agent routes a request without its "for N seconds" (routers trained with
    them refused 70 % of the requests they own)."""
    from motion_agent.experts.prompt_features import prompt_features
    from motion_agent.model.language_model import m2t_prompt, t2m_prompt

    rng = np.random.default_rng(seed)
    features = {}
    if "t2m" in recipe.directions:
        texts = [t2m_prompt(family_request(family, rng)) for _ in range(recipe.prompts)]
        features["t2m"] = prompt_features(lm, texts)
    if "m2t" in recipe.directions:
        vocabulary = lm.vocabulary
        motions = [
            m2t_prompt(vocabulary, rng.integers(vocabulary.codebook_size, size=rng.integers(10, 50)))
            for _ in range(recipe.prompts)
        ]
        features["m2t"] = prompt_features(lm, motions)
    return features


def write_expert(
    lm,
    folder: Path,
    seed: int,
    family: str | None = None,
    recipe: ExpertRecipe | None = None,
    features: dict[str, np.ndarray] | None = None,
    note: str = "synthetic expert: random LoRA",
) -> Path:
    """An expert folder as training writes it: `adapter/` (a LoRA of `recipe`'s shape with random weights,
    seeded by `seed`), eval.json and, given a request family, a router fitted on `features` (default:
    router_features(lm, family, seed, recipe)). eval.json is written last: its presence marks the
    folder complete."""
    import torch
    from peft import get_peft_model

    from motion_agent.experts.routing import ExpertRouter
    from training.continual.router_training import fit_autoencoder

    recipe = recipe or ExpertRecipe.small()
    folder = Path(folder)
    if family is not None and features is None:
        features = router_features(lm, family, seed, recipe)  # before the LoRA goes in: the frozen base's
    torch.manual_seed(seed)
    model = get_peft_model(lm.model, recipe.peft_config())
    try:
        model.save_pretrained(folder / "adapter", save_embedding_layers=False)
    finally:
        model.unload()  # the LoRA layers leave the shared base model again
    if family is not None:
        settings = recipe.router_settings(seed)
        ExpertRouter({direction: fit_autoencoder(rows, settings) for direction, rows in features.items()}).save(folder)
    (folder / "eval.json").write_text(json.dumps({"family": family, "note": note}))
    return folder


class ExpertMaker:
    """Signed bundles of synthetic experts for one base model, each made once under `work` (experts/NAME,
    bundles/NAME-VERSION.tar); a family's router features are computed once per prompt seed."""

    def __init__(
        self,
        base_dir: Path,
        work: Path,
        signer: Signer,
        recipe: ExpertRecipe | None = None,
        note: str = "synthetic expert: random LoRA",
    ) -> None:
        from motion_agent.model.base_model import BaseModelSpec, load_base_model

        self.work, self.signer, self.note = Path(work), signer, note
        self.recipe = recipe or ExpertRecipe.small()
        self.spec = BaseModelSpec.read(base_dir)
        self.lm = load_base_model(base_dir)
        self._features: dict[tuple[str, int], dict[str, np.ndarray]] = {}

    def folder(self, name: str, family: str | None, seed: int, prompt_seed: int | None = None) -> Path:
        """The expert folder NAME (LoRA seeded by `seed`, router features drawn with `prompt_seed`,
        default `seed`), made unless a complete one is there."""
        folder = self.work / "experts" / name
        if (folder / "eval.json").is_file():
            return folder
        features = None
        if family is not None:
            key = (family, seed if prompt_seed is None else prompt_seed)
            if key not in self._features:
                self._features[key] = router_features(self.lm, family, key[1], self.recipe)
            features = self._features[key]
        return write_expert(self.lm, folder, seed, family, self.recipe, features, self.note)

    def bundle(
        self,
        name: str,
        family: str | None,
        seed: int,
        version: str = FIRST_VERSION,
        prompt_seed: int | None = None,
        scenario: str | None = None,
    ) -> Path:
        """The signed bundle of expert NAME at `version` (scenario: its family), made once."""
        from motion_agent.bundles.archive import pack_bundle
        from motion_agent.bundles.keys import load_private_key

        path = self.work / "bundles" / f"{name}-{version}.tar"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            pack_bundle(
                self.folder(name, family, seed, prompt_seed),
                path,
                load_private_key(self.signer.key),
                name=name,
                scenario=scenario or family or name,
                version=version,
                backbone_fingerprint=self.spec.fingerprint,
                tokenizer_fingerprint=self.spec.tokenizer_fingerprint,
            )
        return path


def install_into(store_dir: Path, bundles: list[Path], keyring: Path, spec) -> Path:
    """An expert store holding these bundles, installed through the store's own verified path."""
    from motion_agent.bundles.store import ExpertStore

    store = ExpertStore(store_dir)
    for bundle in bundles:
        store.install(
            bundle, keyring, backbone_fingerprint=spec.fingerprint, tokenizer_fingerprint=spec.tokenizer_fingerprint
        )
    return store_dir
