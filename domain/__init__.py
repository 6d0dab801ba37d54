"""The pure domain core: order lifecycle, working-time calendar, SLA policy and deadlines, the 28-point
checklist, dispatch scoring and the plain records the rest of the bot passes around.

Nothing here does I/O (except `policy.load_policy`, which reads the policy file) or reads the clock: every
function that needs the time takes `now` or an instant as an argument, so SLA and dispatch can be tested and
simulated on any clock. Instants are timezone-aware `datetime`s; results are returned in UTC.
"""
