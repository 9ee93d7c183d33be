"""Marching cubes, UV unwrapping, textured .glb/.obj writers, previews and turntables."""
