"""The learning curve (annotation effort against the share of the answers given after each model that it agreed
with) as Slicer plot nodes.

Nothing of a project is held out, so the backend scores each model on the answers that came after it, before the
next training job trains on them: answers the model never saw. One table node holds the points, one plot series
draws that share over effort, one chart shows it. The three nodes are found again by name, so refreshing the curve
updates them in place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import vtk

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.mrml import MrmlContext

TABLE_NAME = "CovidActiveLearning learning curve table"
SERIES_NAME = "Agreement with later answers"
CHART_NAME = "CovidActiveLearning learning curve"
CHART_TITLE = "Learning curve"
EFFORT_COLUMN = "effort (s)"
ANSWERS_COLUMN = "answers"
DICE_COLUMN = "agreement with later answers"
X_AXIS_TITLE = "Annotation effort (s)"
Y_AXIS_TITLE = "Share of later answers it agreed with"
SERIES_COLOR = (0.12, 0.47, 0.71)  # a blue that reads well on the plot view's white background


@dataclass(frozen=True)
class CurvePoint:
    """One finished training job of the backend's learning curve (``GET /projects/{id}/metrics/curve``)."""

    job_id: int
    answers: int
    effort_seconds: float
    agreement: float | None  # share of the answers given after the model (not trained on); None until scored

    @classmethod
    def from_json(cls, item: Mapping) -> CurvePoint:
        """Parse one curve point.

        Raises:
            UserFacingError: a missing key or a value of the wrong kind.
        """
        try:
            agreement = item["unseen_agreement"]
            point = cls(
                int(item["job_id"]),
                int(item["answers"]),
                float(item["effort_seconds"]),
                None if agreement is None else float(agreement),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise UserFacingError(f"The backend sent a learning curve point that cannot be read ({error!r}).") from None
        if not math.isfinite(point.effort_seconds) or (
            point.agreement is not None and not math.isfinite(point.agreement)
        ):
            raise UserFacingError(
                f"The backend sent a learning curve point with a non-finite value (job {point.job_id})."
            )
        return point


def show_learning_curve(context: MrmlContext, points: Sequence[Mapping]):
    """Build or update the learning curve's table, plot series and chart nodes; returns the chart node.

    Args:
        points: the backend's curve JSON, a list of ``{"job_id", "answers", "effort_seconds", "unseen_agreement",
            ...}``. Points whose ``unseen_agreement`` is null (the newest model, not yet scored) are left out; the
            rest are sorted by effort so the line runs left to right.

    Returns:
        The vtkMRMLPlotChartNode (show it with the Plots module logic's ``ShowChartInLayout`` in Slicer).

    Raises:
        UserFacingError: a point cannot be read.
    """
    measured = sorted(
        (point for point in map(CurvePoint.from_json, points) if point.agreement is not None),
        key=lambda point: (point.effort_seconds, point.answers),
    )
    table_node = _node(context.scene, "vtkMRMLTableNode", TABLE_NAME)
    table_node.SetAndObserveTable(_curve_table(measured))
    series = _node(context.scene, "vtkMRMLPlotSeriesNode", SERIES_NAME)
    series.SetAndObserveTableNodeID(table_node.GetID())
    series.SetXColumnName(EFFORT_COLUMN)
    series.SetYColumnName(DICE_COLUMN)
    series.SetPlotType(series.PlotTypeScatter)
    series.SetMarkerStyle(series.MarkerStyleCircle)
    series.SetLineStyle(series.LineStyleSolid)  # scatter markers joined by lines
    series.SetColor(*SERIES_COLOR)
    chart = _node(context.scene, "vtkMRMLPlotChartNode", CHART_NAME)
    if not chart.HasPlotSeriesNodeID(series.GetID()):
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    chart.SetTitle(CHART_TITLE)
    chart.SetXAxisTitle(X_AXIS_TITLE)
    chart.SetYAxisTitle(Y_AXIS_TITLE)
    chart.SetYAxisRangeAuto(False)
    chart.SetYAxisRange(0.0, 1.0)  # Dice lies in [0, 1]; a fixed range keeps refreshed curves comparable
    chart.SetLegendVisibility(False)
    return chart


def _curve_table(points: Sequence[CurvePoint]) -> vtk.vtkTable:
    """A ``[len(points), 3]`` table: effort (s), answers, agreement with later answers."""
    table = vtk.vtkTable()
    for name, array_class, values in (
        (EFFORT_COLUMN, vtk.vtkDoubleArray, [point.effort_seconds for point in points]),
        (ANSWERS_COLUMN, vtk.vtkIntArray, [point.answers for point in points]),
        (DICE_COLUMN, vtk.vtkDoubleArray, [point.agreement for point in points]),
    ):
        column = array_class()
        column.SetName(name)
        for value in values:
            column.InsertNextValue(value)
        table.AddColumn(column)
    return table


def _node(scene, class_name: str, name: str):
    """The scene's first node of ``class_name`` named ``name``, created when there is none."""
    found = scene.GetNodesByClassByName(class_name, name)
    if found.GetNumberOfItems():
        return found.GetItemAsObject(0)
    return scene.AddNewNodeByClass(class_name, name)
