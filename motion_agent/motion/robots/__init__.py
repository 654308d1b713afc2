"""Real humanoids driven by inverse kinematics: robot descriptions from installed packages, the human ->
robot key-body targets, one warm-started QP per frame (mink on MuJoCo), trajectories a ros2_control
JointTrajectoryController accepts, and a feasibility report per motion.

MuJoCo and mink come with the `robots` extra (`pip install 'motion_agent[robots]'`) and the robot
descriptions with the `holosoma` wheel (installed without its dependencies); this package imports
neither until a robot is loaded, so the rest of the runtime works without them. `config` and `loader`
are plain Python; the modules that need MuJoCo say so when it is missing.
"""
