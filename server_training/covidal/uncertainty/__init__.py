"""Pixel-wise uncertainty from Monte-Carlo head dropout: sampling and the measures that rank it."""
