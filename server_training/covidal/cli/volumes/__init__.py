"""Commands on 3D volumes: cases, label corruption, training (noisy teacher), pseudo-labels, evaluation."""
