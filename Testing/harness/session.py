"""The harness app and a headless Chromium page on it, run on their own thread for a test (or a script) to drive.

Slicer's views, the scene and the trame server live on one thread with one asyncio loop, as they live on
Slicer's GUI thread; Playwright's asyncio API runs on that same loop. The caller's thread never touches
VTK or MRML: :meth:`HarnessSession.call` runs a function on the harness thread and returns its result,
and every browser action is a coroutine run there. Chromium is Debian's (``/usr/bin/chromium``), launched
by Playwright with a fresh temporary profile; Playwright's own browser downloads are never used.

A click is what a person does: the mouse moves over the view in several steps (Slicer's markups widget
places a point only after hover events have reached it), then presses and releases the left button.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.app import HarnessApp

CHROMIUM = Path(os.environ.get("COVIDAL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
VIEWPORT = (1400, 860)
CALL_TIMEOUT_S = 120
HOVER_STEPS = 6


class HarnessSession:
    """Starts the harness app on a free loopback port and a Chromium page on it (see the module docstring).

    Args:
        screenshots: folder for :meth:`screenshot` files.
        viewport: the page's size in CSS pixels (the views' render windows follow it).
        on_screenshot: called with the path of each screenshot written.

    Raises:
        RuntimeError: Chromium is missing, or the app or page did not come up (with the cause).
    """

    def __init__(
        self,
        screenshots: Path,
        viewport: tuple[int, int] = VIEWPORT,
        on_screenshot: Callable[[Path], None] | None = None,
    ) -> None:
        if not CHROMIUM.is_file():
            raise RuntimeError(f"{CHROMIUM} is missing: `apt-get install chromium` (scripts/setup.sh does it)")
        self.screenshots = Path(screenshots)
        self.screenshots.mkdir(parents=True, exist_ok=True)
        self._viewport = {"width": viewport[0], "height": viewport[1]}
        self._on_screenshot = on_screenshot or (lambda path: None)
        self.app: HarnessApp | None = None
        self.page = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="harness", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._failure is not None:
            raise RuntimeError(f"the harness did not start: {self._failure!r}") from self._failure

    # Running things on the harness thread

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(app, *args)`` on the harness thread (where the scene and the views live); returns its result."""

        async def wrapped():
            return function(self.app, *args)

        return self.run(wrapped())

    def run(self, coroutine) -> Any:
        """Run ``coroutine`` on the harness loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CALL_TIMEOUT_S)

    def wait_until(self, condition: Callable[[HarnessApp], Any], timeout: float = 60, what: str = "") -> Any:
        """Poll ``condition(app)`` on the harness thread until it is truthy; returns that value.

        Raises:
            AssertionError: the timeout passed (with ``what`` and the panel's error line).
        """
        deadline = time.monotonic() + timeout
        while True:
            value = self.call(condition)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what or condition}; the panel says: "
                    f"{self.text('error')!r} {self.text('notice')!r}"
                )
            time.sleep(0.2)

    # The panel

    def click_button(self, name: str) -> None:
        """Click the panel button whose text is ``name`` (Playwright waits until it is enabled)."""
        self.run(self.page.get_by_role("button", name=name, exact=True).click())

    def button_enabled(self, name: str) -> bool:
        return self.run(self.page.get_by_role("button", name=name, exact=True).is_enabled())

    def fill(self, label: str, value: Any) -> None:
        """Type ``value`` into the panel field labelled ``label``."""
        self.run(self.page.get_by_label(label, exact=True).fill(str(value)))

    def text(self, element_id: str) -> str:
        """The text of the panel line with this id (``notice``, ``current-region``, ``training-status``, ...)."""
        return self.run(self.page.locator(f"#{element_id}").inner_text())

    def wait_for_text(self, element_id: str, contains: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while contains not in (text := self.text(element_id)):
            if time.monotonic() > deadline or (element_id != "error" and self.text("error")):
                raise AssertionError(
                    f"#{element_id} says {text!r}, not {contains!r}; error line: {self.text('error')!r}"
                )
            time.sleep(0.2)
        return text

    def wait_idle(self, timeout: float = 120) -> None:
        """Wait until no backend action is running (the panel's busy state)."""
        self.wait_until(lambda app: app._running is None, timeout, "the backend action to finish")

    # The views

    def view_box(self, view: str = "Red") -> dict:
        """The page rectangle ``{x, y, width, height}`` of the view's streamed image."""
        return self.run(self.page.locator(f"#view-{view} img").bounding_box())

    def page_point(self, ras, view: str = "Red") -> tuple[float, float]:
        """Where on the page the RAS point ``ras`` (mm) shows in ``view`` (it must lie on the view's plane)."""
        box = self.view_box(view)

        def to_xy(app):
            xy_to_ras = _matrix(app.slice_node(view).GetXYToRAS())
            return (np.linalg.inv(xy_to_ras) @ np.append(np.asarray(ras, float), 1.0))[:2]

        x, y = self.call(to_xy)
        return box["x"] + x, box["y"] + box["height"] - y  # VTK's y runs up from the bottom row

    def ras_at(self, page_x: float, page_y: float, view: str = "Red") -> np.ndarray:
        """The RAS point (mm) on the view's plane under the page point."""
        box = self.view_box(view)
        x, y = page_x - box["x"], box["height"] - (page_y - box["y"])
        return self.call(lambda app: (_matrix(app.slice_node(view).GetXYToRAS()) @ [x, y, 0.0, 1.0])[:3])

    def hover(self, x: float, y: float) -> None:
        """Move the mouse to ``(x, y)`` in small steps, as a hand does (hover events reach the view's widgets)."""

        async def move():
            for step in range(HOVER_STEPS, 0, -1):
                await self.page.mouse.move(x - 3 * step, y - 2 * step)
                await asyncio.sleep(0.03)
            await self.page.mouse.move(x, y)
            await asyncio.sleep(0.15)

        self.run(move())

    def click_at(self, x: float, y: float) -> None:
        """Hover to ``(x, y)``, then press and release the left button there."""
        self.hover(x, y)

        async def press():
            await self.page.mouse.down()
            await asyncio.sleep(0.08)
            await self.page.mouse.up()
            await asyncio.sleep(0.3)

        self.run(press())

    def press(self, keys: str, view: str = "Red") -> None:
        """Press ``keys`` (Playwright's names: ``"b"``, ``"Shift+B"``, ``"n"``) with the view focused."""

        async def key():
            await self.page.locator(f"#view-{view} [tabindex]").first.focus()
            await self.page.keyboard.press(keys)
            await asyncio.sleep(0.3)

        self.run(key())

    def screenshot(self, name: str) -> Path:
        """Write the page (panel and views) to ``<screenshots>/<name>.png``, print and return the path."""
        path = self.screenshots / f"{name}.png"
        self.run(asyncio.sleep(0.4))  # the last render reaches the page
        self.run(self.page.screenshot(path=str(path)))
        print(f"screenshot: {path}")
        self._on_screenshot(path)
        return path

    def capture_view(self, path: Path, view: str = "Red", colors: int = 128) -> Path:
        """Write what Slicer's view renders (its render window, lossless, not the page's streamed JPEG) to the PNG
        ``path``, reduced to ``colors`` colours so that it stays small; returns the path."""
        from PIL import Image
        from slicer import vtkMRMLLayerDisplayableManager
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkCommonDataModel import vtkImageData

        def grab(app):
            window = app.slice_views()[view].render_window()
            window.Render()
            image = vtkImageData()
            vtkMRMLLayerDisplayableManager.RenderWindowBufferToImage(window, image)  # leaves the window untouched
            columns, rows, _ = image.GetDimensions()
            pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(rows, columns, -1)[::-1, :, :3]
            return np.ascontiguousarray(pixels)

        self.run(asyncio.sleep(0.3))
        picture = Image.fromarray(self.call(grab)).quantize(colors, method=Image.Quantize.MEDIANCUT)
        picture.save(path, optimize=True)
        print(f"view capture: {path}")
        return Path(path)

    def close(self) -> None:
        if self._loop is None or not self._thread.is_alive():
            return
        try:
            self.run(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    # Internals

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self.app = HarnessApp()  # on this thread and loop: trame-slicer schedules its views here
            self._loop.run_until_complete(self._start())
        except BaseException as error:  # noqa: BLE001 - reported by the constructor on the caller's thread
            self._failure = error
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        from playwright.async_api import async_playwright

        server = self.app.server
        server.start(
            port=0,
            host="127.0.0.1",
            exec_mode="task",
            open_browser=False,
            show_connection_info=False,
            thread=True,
            timeout=0,
        )
        await server.ready
        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        self.page = await self._browser.new_page(viewport=self._viewport)
        await self.page.goto(f"http://127.0.0.1:{server.port}/")
        await self.page.locator("#view-Red img").wait_for(state="visible", timeout=CALL_TIMEOUT_S * 1000)

    async def _stop(self) -> None:
        await self._browser.close()
        await self._playwright.stop()
        await self.app.server.stop()
        self.app.close()


def _matrix(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(row, column) for column in range(4)] for row in range(4)])
