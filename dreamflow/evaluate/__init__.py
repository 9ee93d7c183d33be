"""Evaluation: CLIP score / R-precision (open_clip), toy ground-truth metrics, suite reports."""
