"""Commands on 2D slices: train, evaluate, predict, simulate region active learning, compare its curves."""
