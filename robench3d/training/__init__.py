"""The shared trainer (backbones, adversarial training, MRPD) and backbone training with a weights cache."""
