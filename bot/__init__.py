"""The bot process: configuration, clock, logging, texts, the Telegram application and its sender."""
