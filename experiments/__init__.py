"""Experiments that train networks (need torch and scikit-image); not part of the package."""
