"""Sample captures made by real WebRTC stacks in emulated networks, and their generator (captures.generate)."""
