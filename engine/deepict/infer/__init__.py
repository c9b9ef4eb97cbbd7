"""Inference: the 3D sliding window, 2D slice segmentation, clustering of probability maps and picking."""
