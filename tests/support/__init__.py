"""Test support: real services started on free loopback ports and stopped by PID."""
