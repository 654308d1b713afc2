"""The parts of bench_reliability.py: conformance (the registry in motion_agent.bundles.conformance),
bundle_fuzz, topic_fuzz (with the pose-flood latency), node_kill and soak; one module each."""
