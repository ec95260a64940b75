"""Recommendation engine: model builds, model registry, serving."""
