"""3D representations: hash-grid NeRF (stage 1) and textured mesh (stages 2-3)."""
