"""The BikeWerk adapter: the CRM API contract, its client, the sync into SQLite, the CRM write outbox and a
simulator of the API for tests, the demo and benchmarks. Only this package knows the CRM's wire format."""
