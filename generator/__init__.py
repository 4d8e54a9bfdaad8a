"""Turning batches of generation requests into images (diffusers). Imports torch lazily."""
