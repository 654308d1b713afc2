"""One new scenario's expert for a robot that already serves others (`motion-agent-train expert`).

train.py   the run: the robot's deployed experts restored as frozen O-LoRA subspaces with their routers,
           one moe-hard expert trained on the new clips orthogonal to them, its router fitted, and the
           routing of the new and the deployed scenarios' requests measured before and after
report.py  report.md and routing.png: what the new expert will do to the robot's routing
cli.py     the command; with a key it also writes the signed bundle
"""
