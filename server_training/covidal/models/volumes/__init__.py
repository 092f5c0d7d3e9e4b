"""3D networks of volumes (the noisy-teacher U-Net)."""
