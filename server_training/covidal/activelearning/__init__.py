"""Region-based active learning: simulated runs, their learning curves, plots and summaries."""
