"""Evaluation metrics: micro-averaged segmentation scores and object counting (MAE, GAME)."""
