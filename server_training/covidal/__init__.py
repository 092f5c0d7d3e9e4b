"""covidal: training backend of the CovidActiveLearning 3D Slicer extension."""

__version__ = "0.1.0"
