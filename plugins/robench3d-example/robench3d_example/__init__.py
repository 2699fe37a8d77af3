"""robench3d-example: a voxel-quantisation defense and a one-step per-point attack, as a plugin template."""
