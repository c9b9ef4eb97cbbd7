"""Evaluation against ground truth: particle F1 within a distance, voxel F1 (Dice), precision-recall curves."""
