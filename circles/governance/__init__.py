"""Governance (AI-GRC): sanctions screening, process drift, compliance KPIs."""
