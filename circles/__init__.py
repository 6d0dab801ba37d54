"""The circles of the seed (SPEC §12): each owns its money or risk, its KPIs and its agents, and reports what
it did as signals and decisions on the shared backbone (backbone/)."""
