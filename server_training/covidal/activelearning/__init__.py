"""Region-based active learning, one core for ``covidal simulate`` and ``covidal serve``.

A cycle (:mod:`.query`): slices or a volume -> network grid -> per-region scores ``[slices, regions]``
(:mod:`.scoring`, by a strategy of :mod:`.strategies`) -> the one selection rule (:mod:`.selection`), every draw
seeded from the cycle's seed (:mod:`.seeds`). :mod:`.simulation` runs cycles with a simulated annotator.
"""
