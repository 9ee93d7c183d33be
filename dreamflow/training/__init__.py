"""The one training loop every stage uses, with checkpoints, resume and the NaN guard."""
