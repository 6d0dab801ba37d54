"""The APScheduler 3 jobs of the bot process: thin wrappers that call the same use cases tests call."""
