"""Test support: one services builder and one harness that every test module uses (no test module imports
another)."""
