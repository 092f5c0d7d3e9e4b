"""3D CT volumes: case listing, the training grid, random patches and sliding-window inference."""
