"""Region annotation: the clinician's answers per region, a simulated annotator, and what answers cost."""
