"""Networks (2D and 3D U-Nets), their self-describing model files, losses and device choice."""
