"""The project layer of ``covidal serve``: what a project does (cycles, training jobs, predictions, its learning
curve) and where its files live; the HTTP routes call it and only translate requests and answers."""
