"""Datasets that need no download: images bundled with installed packages, local folders."""
