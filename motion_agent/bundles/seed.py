"""The experts that ship inside the package, carried into a robot's own expert store.

A robot that installs bundles (`node.keyring`) serves from a writable store of its own, not from the
read-only store inside the package. So that turning installs on does not lose the shipped scenarios, the
first start seeds that store with the shipped experts (`ExpertStore.adopt`: only a store that was never
written, through the store's own lock, staging and atomic index commit).

The shipped experts are signed by the key that built the embedded model, which is in no robot's
keyring. They are trusted by their exact bytes instead: a manifest byte-identical to one inside the
package (a manifest pins every file by sha256) is as trusted as the package's own code
(trust.shipped_manifests, which TrustPolicy accepts). `motion-agent-bundle remove` stops serving one.
"""

from __future__ import annotations

from pathlib import Path

from motion_agent.bundles.store import ExpertStore


def seed_store(store: ExpertStore, shipped: str | Path) -> list[str]:
    """The shipped store's active experts made `store`'s first experts, if it was never written; their
    names ([] when it was)."""
    if store.index_path.exists() or store.history_path.exists():
        return []
    source = ExpertStore(shipped)
    active = {name: (r.active, source.version_path(name, r.active)) for name, r in source.read_index().items()}
    return store.adopt(active) if active else []
