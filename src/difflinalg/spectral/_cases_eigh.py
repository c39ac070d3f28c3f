"""Verification cases of eigh, eigh_subspace and subspace_projector."""
