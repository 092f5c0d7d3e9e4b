"""Region annotation: the clinician's answers per region, a simulated annotator, and what answers cost."""

from covidal.annotation.annotator import SimulatedAnnotator
from covidal.annotation.effort import ClickEffort, EffortModel, PolygonEffort
from covidal.annotation.state import AnnotationState, Answer, RegionLabel

__all__ = [
    "AnnotationState",
    "Answer",
    "ClickEffort",
    "EffortModel",
    "PolygonEffort",
    "RegionLabel",
    "SimulatedAnnotator",
]
