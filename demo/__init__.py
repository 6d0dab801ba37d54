"""The embedded default: `main.py demo` (the whole system on one machine, with simulated people) and
`main.py simulate` (a discrete-event prediction of the release's success criteria before rollout)."""
