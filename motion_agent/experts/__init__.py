"""Adapters in memory and which expert answers: expert set, merged serving, routers."""
