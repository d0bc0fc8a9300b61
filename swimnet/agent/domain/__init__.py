"""The overlay agent's domain (filled in by the following commits)."""
