"""Unit Economics (AI-CFO, SPEC §12): net margin, leaks and their causes, realized vs booked."""
