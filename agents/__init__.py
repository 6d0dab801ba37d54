"""The agents: use cases that read and write the store through `storage/`, decide with `domain/`, record what
they did as signals and decisions, queue Telegram messages (storage.messages) and CRM writes (the outbox),
and are called alike by handlers, scheduler jobs, the sync and tests."""
