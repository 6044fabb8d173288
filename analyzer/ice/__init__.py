"""ICE and TURN reconstruction from the packets alone: allocations, candidates, sessions, pairs."""
