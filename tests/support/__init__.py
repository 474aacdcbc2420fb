"""Builders of tiny random stand-ins for the pretrained parts stylecond loads (test-only)."""
