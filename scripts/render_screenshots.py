"""Render Resources/Screenshots/*.png with Slicer's own slice view, through the end-to-end harness (Testing/harness).

A real ``covidal serve`` on loopback, the module's core logic on a slicer-core scene with Slicer's slice logics,
markups widgets, segmentation and colour-legend displayable managers, rendered offscreen (EGL) and clicked in
Debian's Chromium. Three pictures of the red (axial) view, each captured from its render window:

- ``suggestions.png``: the suggested region with the most infection, highlighted, over the heat map and its legend;
- ``infection_point.png``: the same region after a mouse click on infection in the browser;
- ``prediction.png``: after every region was answered from the lesion mask (the simulated clinician: a region
  with infection gets up to ``CLICKS_PER_REGION`` clicks on it, the others a background tag), a short training
  and *Predict*: the 'Infection' segment.

The CT is the demo case: a real chest CT (TotalSegmentator 2.18.0 sdist, Apache-2.0) with SYNTHETIC lesions,
fetched and cached as ``covidal demo`` does. It is a picture, not a test: the tests are in Testing/e2e.

Usage (from the repository root): ``.venv/bin/python scripts/render_screenshots.py [--out DIR] [--regions N]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from covidal.client import CovidalClient
from covidal.sample_data.demo import make_demo_case
from covidal.service.local import local_service

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Testing"))
sys.path.insert(0, str(ROOT / "Testing" / "e2e"))

from harness.session import HarnessSession
from steps import click_voxel, get_suggestions, load

PROJECT = "screenshots"
MODEL = {"image_size": 96, "width": 16}  # the demo's small U-Net
CLICKS_PER_REGION = 12
VIEWPORT = (1180, 560)  # the red view comes out about 530 x 500 pixels
TRAINING_TIMEOUT_S = 2400


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "Resources" / "Screenshots")
    # The first cycle ranks regions by a CT prior of infection, one region per slice: asking for many makes sure
    # some region holds a lesion to click on.
    parser.add_argument("--regions", type=int, default=190, help="regions the cycle asks for")
    parser.add_argument("--steps", type=int, default=150, help="training steps before the prediction")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    case = make_demo_case()
    lesions = sitk.GetArrayFromImage(sitk.ReadImage(str(case.lesions)))  # [K, J, I]
    with (
        tempfile.TemporaryDirectory(prefix="covidal-screenshots-") as folder,
        local_service(Path(folder) / "projects", Path(folder) / "serve.log") as client,
    ):
        client.create_project(
            PROJECT, model_kind="unet", grid_k=16, strategy="entropy", mc_samples=2, loss="point", settings=MODEL
        )
        session = HarnessSession(Path(folder) / "pages", viewport=VIEWPORT)
        try:
            render(session, client, case.ct, lesions, args)
        finally:
            session.close()
    return 0


def render(session: HarnessSession, client: CovidalClient, ct: Path, lesions: np.ndarray, args) -> None:
    session.fill("URL", client.base_url)
    session.click_button("Connect")
    session.wait_for_text("backend-status", "Connected to covidal")
    session.fill("Project", PROJECT)
    load(session, ct)
    regions = get_suggestions(session, args.regions)
    region = max(regions, key=lambda region: lesion_voxels(lesions, region))
    if lesion_voxels(lesions, region) == 0:
        raise SystemExit("no suggested region holds a lesion: ask for more regions (--regions)")
    session.call(lambda app: app.logic.go_to_region(region.id))
    session.capture_view(args.out / "suggestions.png")

    click_voxel(session, lesion_voxel(lesions, region))
    session.wait_until(lambda app: app.logic.book.answer_for(region.id), what="the click")
    session.call(lambda app: app.slice_views()["Red"].interactor().InvokeEvent("LeaveEvent"))  # no preview point
    session.capture_view(args.out / "infection_point.png")

    session.call(answer_the_rest, lesions)
    session.fill("Steps", args.steps)
    session.click_button("Submit")
    deadline = time.monotonic() + TRAINING_TIMEOUT_S
    while "Done" not in (status := session.text("training-status")):
        if time.monotonic() > deadline or "Failed" in status:
            raise SystemExit(f"training did not finish: {status}")
        time.sleep(1)
    session.click_button("Predict")
    session.wait_for_text("infected", "Infected:", timeout=300)
    session.call(lambda app: app.logic.go_to_region(region.id))
    opacity = session.page.locator(".v-slider", has_text="Heat map opacity").get_by_role("slider")
    session.run(opacity.press("Home"))  # the heat map at opacity 0: the segment shows
    session.wait_until(lambda app: app.slice_views()["Red"].get_foreground_opacity() == 0, what="the slider")
    session.capture_view(args.out / "prediction.png")
    print(session.text("infected"))


def lesion_voxels(lesions: np.ndarray, region) -> int:
    box = region.box
    return int(lesions[box.k, box.j0 : box.j1, box.i0 : box.i1].sum())


def lesion_voxel(lesions: np.ndarray, region) -> tuple[int, int, int] | None:
    """The lesion voxel nearest the middle of the lesion part of the region's box, or None."""
    box = region.box
    j, i = np.nonzero(lesions[box.k, box.j0 : box.j1, box.i0 : box.i1])
    if len(i) == 0:
        return None
    nearest = np.argmin((i - i.mean()) ** 2 + (j - j.mean()) ** 2)
    return box.i0 + int(i[nearest]), box.j0 + int(j[nearest]), box.k


def answer_the_rest(app, lesions: np.ndarray) -> None:
    """The simulated clinician (on the harness thread): a click on a lesion voxel, or a background tag."""
    from CovidActiveLearningLib.geometry import ijk_to_ras

    logic = app.logic
    for region in logic.cycle.regions:
        if logic.book.answer_for(region.id) is not None:
            continue
        logic.go_to_region(region.id)
        box = region.box
        j, i = np.nonzero(lesions[box.k, box.j0 : box.j1, box.i0 : box.i1])
        if len(i) == 0:
            logic.tag_background()
        for index in np.linspace(0, len(i) - 1, min(len(i), CLICKS_PER_REGION)).round().astype(int):
            logic.add_point_ras(ijk_to_ras(app.volume, (box.i0 + int(i[index]), box.j0 + int(j[index]), box.k)))
    app.refresh()


if __name__ == "__main__":
    raise SystemExit(main())
