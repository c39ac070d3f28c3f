"""Verification cases of svd and svd_truncated."""
