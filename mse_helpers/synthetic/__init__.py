"""Synthetic registration data for trying the pipeline and for checking the method."""
