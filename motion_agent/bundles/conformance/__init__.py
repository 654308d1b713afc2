"""The bundle conformance suite: every attack on the update path, as a named case that must be refused
with the store and the served experts left exactly as they were (`motion-agent-bundle conformance`).

rig.py     the expert, keys and valid bundles the attacks start from, and the archive-crafting tools
cases.py   the registry: one case per attack, by attack class (TUF's, plus archive-level ones)
runner.py  runs a case in a fresh store and reports the outcome
"""

from motion_agent.bundles.conformance.cases import CASES, Attempt, Case
from motion_agent.bundles.conformance.rig import Rig
from motion_agent.bundles.conformance.runner import Outcome, run_case, run_suite

__all__ = ["CASES", "Attempt", "Case", "Outcome", "Rig", "run_case", "run_suite"]
