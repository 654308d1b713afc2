"""Bodies and motion: skeleton, rotations, HumanML3D features, retargeting, export. No ML."""
