"""Reliability (AI-CTO/SRE): CRM latency, sync runs, health checks, incidents."""
