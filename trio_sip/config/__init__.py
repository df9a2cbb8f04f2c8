"""Typed configuration for trio-sip endpoints (placeholder: filled in by the following commits)."""
