"""Sales Operations (AI-РОП): dispatch, order progress, the checklist, the SLA watchdog, KPIs and digests."""
