"""The signal and decision backbone every circle uses and none owns (SPEC §6): raising, routing, resolving and
escalating signals, recording decisions, approvals, postmortems, and the `/decide` commands. It imports only
the domain, storage and the views (keyboards), never a circle."""
