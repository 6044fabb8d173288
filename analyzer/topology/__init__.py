"""Topology: network profile -> zones -> flow labels -> call topology -> findings."""
