"""`covidal simulate`: the region active-learning loop with a simulated annotator, its config, learning curves,
plots and summaries. It asks the core of the package (scoring, strategies, selection, query) each cycle."""
