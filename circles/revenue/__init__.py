"""Revenue (AI-CRO, AI-Traffic): leads, the funnel per channel, conversion bands."""
