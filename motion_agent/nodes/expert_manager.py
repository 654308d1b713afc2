"""Expert manager inside the agent node: new experts arrive while the node keeps serving.

Three ways in, one install path (MotionAgent.install_bundle: verify signature and digests against the
keyring and this robot's fingerprints, commit to the expert store, swap the served set):
  - the bundle inbox folder (`node.bundle_inbox`), polled every `node.store_poll_s` seconds;
  - the `experts/deploy` topic (std_msgs/String holding a bundle path on this machine);
  - `motion-agent-bundle install` run beside the node: the node notices that the store's index
    generation moved and reloads (also after `rollback` and `remove`).
On its first start on a store, the store is seeded with the embedded model's shipped experts (seed.py).
Installs run on their own thread, so requests keep being served; a request runs wholly on the old
expert set or wholly on the new one. Every outcome is one diagnostic (`expert install`).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

from rclpy.node import Node
from std_msgs.msg import String

from motion_agent.agent import MotionAgent
from motion_agent.bundles.inbox import BundleInbox
from motion_agent.bundles.seed import seed_store
from motion_agent.bundles.trust import TrustPolicy, keyring_fingerprint
from motion_agent.model.base_model import embedded_experts
from motion_agent.nodes.common import guarded
from motion_agent.nodes.diagnostics import Diagnostics, request_label
from motion_agent.nodes.settings import NodeConfig

MAX_PATH_CHARS = 4096  # Linux's PATH_MAX: no bundle path is longer


class ExpertManager:
    def __init__(self, node: Node, agent: MotionAgent, config: NodeConfig, diagnostics: Diagnostics) -> None:
        if agent.store is None:
            raise ValueError("node.bundle_inbox and experts/deploy need an expert store: set agent.routing.experts")
        if not config.keyring:
            raise ValueError("node.keyring must name a folder of trusted *.pub keys to install bundles")
        self.node, self.agent, self.config, self.diagnostics = node, agent, config, diagnostics
        self.inbox = BundleInbox(config.bundle_inbox) if config.bundle_inbox else None
        self._seed()
        self.generation = agent.store.generation()
        self.keyring = keyring_fingerprint(config.keyring)
        agent.trust = TrustPolicy.load(config.keyring)  # serve only experts its keys still sign
        self._report_reload(agent.reload_experts())
        self.jobs: queue.Queue[tuple[Path, bool] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="expert-install", daemon=True)
        self.thread.start()
        self.subscription = node.create_subscription(String, config.deploy_topic, guarded(node, self._on_deploy), 10)
        self.timer = node.create_timer(config.store_poll_s, guarded(node, self._poll))

    def _seed(self) -> None:
        """On the first start of a store, serve the embedded model's shipped experts from it too."""
        shipped = embedded_experts(self.agent.config.base_model) if self.agent.config.base_model else None
        if shipped is None:
            return
        seeded = seed_store(self.agent.store, shipped)
        if seeded:
            message = f"seeded the expert store {self.agent.store.root} with the shipped experts: {', '.join(seeded)}"
            self.node.get_logger().info(message)
            self.diagnostics.publish("expert install", "OK", message, {"seeded": ",".join(seeded)})

    def _on_deploy(self, message: String) -> None:
        path = message.data.strip()
        if len(path) > MAX_PATH_CHARS:  # quote a bounded prefix: a 1 MB "path" must not make 1 MB log lines
            shown = request_label(path)
            self.diagnostics.publish(
                "expert install", "ERROR", f"refused a {len(path)}-character bundle path: {shown}...", {"bundle": shown}
            )
            return
        self.jobs.put((Path(path).expanduser(), False))

    def _poll(self) -> None:
        for bundle in self.inbox.ready() if self.inbox else []:
            self.jobs.put((bundle, True))
        generation, keyring = self.agent.store.generation(), keyring_fingerprint(self.config.keyring)
        if self.jobs.empty() and (generation, keyring) != (self.generation, self.keyring):
            # the store changed in another process, or a key was added or revoked: reload once
            self.generation, self.keyring = generation, keyring
            self.jobs.put(None)

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    self._reload()
                else:
                    self._install(*job)
            except Exception as error:  # one failed job must not end the installs that follow
                self.node.get_logger().error(f"expert install job {job} failed: {type(error).__name__}: {error}")

    def _reload(self) -> None:
        try:
            self.agent.trust = TrustPolicy.load(self.config.keyring)
            changes = self.agent.reload_experts()
        except Exception as error:
            served = ",".join(self.agent.experts.names) or "none"
            message = f"reload failed: {error}; still serving: {served}"
            self.diagnostics.publish("expert install", "ERROR", message, {"reason": str(error), "experts": served})
            return
        self._report_reload(changes)

    def _report_reload(self, changes: dict[str, list[str]]) -> None:
        if changes.get("untrusted"):
            refused = ", ".join(changes["untrusted"])
            message = f"not serving {refused}: no longer signed by a key of {self.config.keyring}"
            self.diagnostics.publish("expert install", "WARN", message, self._values(changes))
        elif any(changes.values()):
            self.diagnostics.publish(
                "expert install", "OK", f"experts reloaded from the store: {changes}", self._values(changes)
            )

    def _install(self, bundle: Path, from_inbox: bool) -> None:
        values = {"bundle": str(bundle), "source": "inbox" if from_inbox else self.config.deploy_topic}
        try:
            result, changes = self.agent.install_bundle(bundle, self.config.keyring)
        except Exception as error:  # BundleError names what is wrong; anything else must not kill the thread
            if from_inbox:
                self.inbox.settle(bundle, str(error))
            self.diagnostics.publish(
                "expert install", "ERROR", f"refused {bundle.name}: {error}", {**values, "reason": str(error)}
            )
            return
        self.generation = self.agent.store.generation()
        if from_inbox:
            self.inbox.settle(bundle)
        self.diagnostics.publish(
            "expert install",
            "OK",
            f"serving {result.name} {result.version}" + (f" (was {result.replaced})" if result.replaced else ""),
            {**values, "expert": result.name, "version": result.version, **self._values(changes)},
        )

    def _values(self, changes: dict[str, list[str]]) -> dict[str, str]:
        return {**{k: ",".join(v) for k, v in changes.items()}, "experts": ",".join(self.agent.experts.names)}
