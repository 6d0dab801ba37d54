"""Trust and Quality (AI-Head of Quality, SPEC §12): compensations, disputes, defects, repeats."""
