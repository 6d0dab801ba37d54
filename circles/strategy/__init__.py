"""Strategy circle (AI-CEO): one summary over all circles, arbitration of conflicts, the autopilot."""
