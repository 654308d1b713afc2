"""New experts while the agent node keeps serving: the bundle inbox, the experts/deploy topic, and
installs made beside the node by `motion-agent-bundle install`, over real ROS 2 topics in process."""

from __future__ import annotations

import shutil
import time

import pytest

from motion_agent.bundles.conformance.cases import HOSTILE_PAX_BYTES
from motion_agent.bundles.conformance.rig import digits_pax
from motion_agent.bundles.inbox import BundleInbox

from conftest import Harness, family_requests, start_launch, stop_process


def test_inbox_takes_only_bundles_that_stopped_changing_and_keeps_them_after(tmp_path):
    inbox = BundleInbox(tmp_path / "inbox")
    bundle = inbox.folder / "a.tar"
    bundle.write_bytes(b"x" * 10)
    (inbox.folder / "notes.txt").write_text("not a bundle")
    assert inbox.ready() == []  # first sighting
    bundle.write_bytes(b"x" * 20)  # still being copied
    assert inbox.ready() == []
    assert inbox.ready() == [bundle]
    assert inbox.ready() == []  # offered once: an install slower than the poll must not get it twice
    refused = inbox.settle(bundle, "The signature does not verify.")
    assert refused == inbox.folder / "refused" / "a.tar" and refused.is_file()
    assert (inbox.folder / "refused" / "a.tar.reason.txt").read_text().startswith("The signature")
    (inbox.folder / "b.tar").write_bytes(b"y")
    inbox.ready()
    assert inbox.settle(inbox.ready()[0]) == inbox.folder / "installed" / "b.tar"
    assert inbox.ready() == []
    (inbox.folder / "c.tar").write_bytes(b"z")
    inbox.ready()
    taken = inbox.ready()[0]
    taken.unlink()  # removed by hand while its install ran: settling must not fail
    assert inbox.settle(taken, "Not a tar file.") == inbox.folder / "refused" / "c.tar"
    assert (inbox.folder / "refused" / "c.tar.reason.txt").is_file()


@pytest.fixture()
def ros():
    rclpy = pytest.importorskip("rclpy")
    rclpy.init()
    yield rclpy
    rclpy.try_shutdown()


@pytest.mark.ros
@pytest.mark.slow
def test_bundles_from_inbox_topic_and_cli_are_served_without_restart(ros, tiny_base_model, expert_bundles, tmp_path):
    from std_msgs.msg import String

    from motion_agent.bundles.store import ExpertStore
    from motion_agent.model.base_model import BaseModelSpec

    shared_keyring, bundles = expert_bundles
    keyring = tmp_path / "keyring"  # this robot's own keyring, to revoke a key from
    shutil.copytree(shared_keyring, keyring)
    store, inbox = tmp_path / "store", tmp_path / "inbox"
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"agent: {{base_model: {tiny_base_model}, routing: {{experts: {store}}}}}\n"
        f"node: {{text_topics: [test_text], diagnostics_topic: test_diagnostics, caption: false, "
        f"keyring: {keyring}, bundle_inbox: {inbox}, deploy_topic: test_deploy, store_poll_s: 0.2}}\n"
    )
    harness = Harness(ros, config)
    try:
        shutil.copy(bundles["juggling"], inbox / "juggling.tar")
        (inbox / "broken.tar").write_bytes(b"not a bundle at all")
        harness.spin_until(lambda: harness.status("expert install", "OK", expert="juggling"))
        harness.spin_until(lambda: harness.status("expert install", "ERROR", bundle=str(inbox / "broken.tar")))
        assert (inbox / "installed" / "juggling.tar").is_file() and (
            inbox / "refused" / "broken.tar.reason.txt"
        ).is_file()

        harness.deploy.publish(String(data="/" + "x" * 1_000_000))  # a 1 MB "path": refused, quoted short
        refusal = harness.spin_until(lambda: harness.status("expert install", "ERROR", bundle="/" + "x" * 119))
        assert refusal and all(
            len(s.message) < 300 and all(len(kv.value) < 300 for kv in s.values) for s in harness.statuses
        )

        hostile = digits_pax(tmp_path / "redos.tar", HOSTILE_PAX_BYTES)  # 61 s in tarfile on CPython 3.11.7
        harness.deploy.publish(String(data=str(hostile)))
        harness.text.publish(String(data="a person waves while a hostile bundle is examined"))
        harness.spin_until(lambda: harness.status("expert install", "ERROR", bundle=str(hostile)))
        values = harness.spin_until(
            lambda: harness.status("request", "OK", request="a person waves while a hostile bundle is examined")
        )
        assert (
            values and "extended tar header" in harness.status("expert install", "ERROR", bundle=str(hostile))["reason"]
        )

        harness.deploy.publish(String(data=str(bundles["piano"])))
        harness.spin_until(lambda: harness.status("expert install", "OK", expert="piano"))

        spec = BaseModelSpec.read(tiny_base_model)  # as `motion-agent-bundle install` beside the node would
        ExpertStore(store).install(
            bundles["swimming"],
            keyring,
            backbone_fingerprint=spec.fingerprint,
            tokenizer_fingerprint=spec.tokenizer_fingerprint,
        )
        harness.spin_until(lambda: harness.status("expert install", "OK", added="swimming"))
        assert harness.node.agent.experts.names == ("juggling", "piano", "swimming")

        harness.text.publish(String(data="a clown juggles rings proudly"))
        values = harness.spin_until(lambda: harness.status("request", "OK", request="a clown juggles rings proudly"))
        assert values["expert"] == "juggling" and "router_loss.piano" in values

        for key in keyring.glob("*.pub"):  # revoke the key that signed every expert
            key.unlink()
        warning = harness.spin_until(lambda: harness.status("expert install", "WARN"))
        assert warning["untrusted"] == "juggling,piano,swimming" and warning["experts"] == ""
        assert harness.node.agent.experts.names == ()
        harness.text.publish(String(data="a clown juggles rings happily"))
        values = harness.spin_until(lambda: harness.status("request", "OK", request="a clown juggles rings happily"))
        assert values["expert"] != "juggling"
    finally:
        harness.close()


@pytest.mark.ros
@pytest.mark.slow
def test_a_bundle_dropped_while_requests_stream_is_used_by_later_requests_and_none_is_lost(
    ros, tiny_base_model, expert_bundles, tmp_path
):
    """`motion-agent launch` in a child process; this process streams requests and drops a bundle."""

    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import String

    from motion_agent.nodes.messages import level_name, status_values

    keyring, bundles = expert_bundles
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"agent: {{routing: {{experts: {tmp_path / 'store'}}}}}\n"
        f"node: {{text_topics: [stream_text], diagnostics_topic: stream_diagnostics, caption: false, "
        f"keyring: {keyring}, bundle_inbox: {inbox}, store_poll_s: 0.2}}\n"
    )
    process = start_launch(tmp_path / "launch.log", "--config", str(config), "--base-model", str(tiny_base_model))
    client = ros.create_node("stream_test_client")
    statuses = []
    client.create_subscription(DiagnosticArray, "stream_diagnostics", lambda m: statuses.extend(m.status), 100)
    text = client.create_publisher(String, "stream_text", 10)

    def spin_until(predicate, timeout=90.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "launch.log").read_text()[-2000:]
            if predicate():
                return True
            ros.spin_once(client, timeout_sec=0.05)
        raise AssertionError(f"timed out; launch log:\n{(tmp_path / 'launch.log').read_text()[-2000:]}")

    def answers():
        return {
            values["request"]: (level_name(s), values.get("expert"))
            for s in statuses
            if (values := status_values(s)).get("request") in requests
        }

    try:
        spin_until(lambda: text.get_subscription_count() > 0)
        time.sleep(0.5)
        requests = list(dict.fromkeys(family_requests("juggling", 12, seed=9)))[:8]  # distinct requests
        for i, request in enumerate(requests):
            if i == 3:
                shutil.copy(bundles["juggling"], inbox / "juggling.tar")
                spin_until(lambda: any("expert install" in s.name for s in statuses))
            text.publish(String(data=request))
            spin_until(lambda sent=request: sent in answers())  # one at a time: latest-wins never drops one
        results = answers()
        assert all(results[r][0] == "OK" for r in requests), results
        assert [results[r][1] for r in requests[:3]] == ["base"] * 3
        later = [results[r][1] for r in requests[3:]]  # served by the expert (mu + 2 sigma may reject one)
        assert "base" not in later and later.count("juggling") >= len(later) - 1, results
    finally:
        client.destroy_node()
        stop_process(process)


@pytest.mark.ros
@pytest.mark.slow
def test_a_robot_that_installs_bundles_serves_the_shipped_experts_from_its_first_start(ros, expert_bundles, tmp_path):
    """node.keyring set on the embedded tiny model: the new store is seeded with the shipped experts once
    (their key is in no keyring: they are trusted by their exact manifests), and bundles install beside them."""
    from std_msgs.msg import String

    from motion_agent.bundles.store import ExpertStore
    from motion_agent.model.base_model import default_base_model, default_experts

    base = default_base_model("tiny")
    if base is None:
        pytest.skip("this checkout has no embedded tiny model")
    shipped = sorted(ExpertStore(default_experts("tiny")).read_index())
    keyring, bundles = expert_bundles  # a fleet keyring that knows nothing of the shipped experts' key
    store = tmp_path / "store"
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"agent: {{base_model: {base}, routing: {{experts: {store}}}}}\n"
        f"node: {{text_topics: [test_text], diagnostics_topic: test_diagnostics, caption: false, "
        f"keyring: {keyring}, deploy_topic: test_deploy, store_poll_s: 0.2}}\n"
    )
    harness = Harness(ros, config)
    try:
        assert harness.node.agent.experts.names == tuple(shipped)
        harness.text.publish(String(data="a person dances a waltz happily"))
        values = harness.spin_until(lambda: harness.status("request", "OK", request="a person dances a waltz happily"))
        assert {f"router_loss.{name}" for name in shipped} <= set(values)
    finally:
        harness.close()
    ExpertStore(store).remove(shipped[0])  # the operator's choice outlives restarts: no second seeding
    harness = Harness(ros, config)
    try:
        assert harness.node.agent.experts.names == tuple(shipped[1:])
    finally:
        harness.close()
