"""Qt-free core of the CovidActiveLearning 3D Slicer module.

Imports only ``slicer`` (MRML and the module logics), ``vtk``, ``numpy`` and the standard
library, plus the backend's stdlib-only HTTP client, so the same code runs inside the Slicer
application and headless under pytest with the ``slicer-core`` wheel. Torch never runs here:
training and scoring happen in ``covidal serve``.
"""
