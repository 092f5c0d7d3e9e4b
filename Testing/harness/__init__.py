"""The end-to-end harness: the module's core logic with Slicer's real views in a browser (see app.py)."""
