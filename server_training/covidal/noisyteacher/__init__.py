"""Noisy-teacher 3D training: the teacher, the students and the per-sample weights (RGS, RGM,
rectification) of their pseudo-labelled mini-batches."""
