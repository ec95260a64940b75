"""Data in and out: the synthetic supermarket generator and importers."""
