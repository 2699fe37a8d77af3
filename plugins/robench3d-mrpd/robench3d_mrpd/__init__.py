"""robench3d-mrpd: Multimodal Robust Prompt Distillation (arXiv:2511.21574) as a robench3d defense plugin."""
