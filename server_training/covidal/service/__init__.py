"""The ``covidal serve`` backend: project store, and (later) the HTTP API used by the Slicer module."""
