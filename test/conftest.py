"""Test-wide settings: every test process talks ROS 2 on its own domain, on loopback only, so that
parallel runs on one machine (or a developer's own ROS 2 graph) never hear each other."""
import os

os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
