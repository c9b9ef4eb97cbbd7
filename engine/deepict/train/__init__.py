"""Training: labels, hyper-parameters, the loop 2D and 3D share, their saved state and post-processing calibration."""
