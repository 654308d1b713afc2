"""The benchmark's experts: synthetic ones (training.synthetic_experts) of the shape every continual
moe-hard expert has, named expert_00, expert_01, ... and given request families so that the expert-count
part's requests always reach expert_00."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from training.synthetic_experts import FAMILY_NAMES, ExpertMaker, ExpertRecipe, Signer

from runtime.workload import FIRST_VERSION, SEED


def expert_name(index: int) -> str:
    return f"expert_{index:02d}"


def expert_family(index: int) -> str:
    """Expert 0's family is its alone; the others cycle through the rest. The expert-count part times
    requests of expert 0's family, which must reach expert 0 at every count: experts sharing that family
    would split its requests between them arbitrarily and be merged again at every change of expert
    (83 changes in 100 requests at 64 experts when every eighth expert shared it), timing switching
    rather than the number of experts installed."""
    return FAMILY_NAMES[0] if index == 0 else FAMILY_NAMES[1 + (index - 1) % (len(FAMILY_NAMES) - 1)]


class ExpertFactory:
    """Signed bundles of the numbered experts for one base model, each made once: LoRA seeded by
    SEED + index, router features drawn once per family (seed SEED + the family's index)."""

    def __init__(self, base_dir: Path, work: Path, signer: Signer, router_steps: int | None) -> None:
        self.maker = ExpertMaker(
            base_dir, work, signer, ExpertRecipe.continual(router_steps), note="benchmark expert: random LoRA"
        )
        self.spec = self.maker.spec

    def bundle(self, index: int, version: str = FIRST_VERSION) -> Path:
        """The bundle of expert `index` (family expert_family(index)) at `version`, made once."""
        family = expert_family(index)
        return self.maker.bundle(
            expert_name(index), family, SEED + index, version, prompt_seed=SEED + FAMILY_NAMES.index(family)
        )

    def bundles(self, indices: range, desc: str = "expert bundles") -> list[Path]:
        return [self.bundle(i) for i in tqdm(indices, desc=desc, unit="expert")]
