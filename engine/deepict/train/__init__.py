"""Training: labels, hyper-parameters, the training loops, their saved state and post-processing calibration."""
