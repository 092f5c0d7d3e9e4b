"""Training losses for point-supervised infection segmentation.

Pick one with :func:`.registry.build_loss` and a :class:`.registry.LossConfig`; every loss is
called as ``loss(model, batch) -> LossResult``.
"""
