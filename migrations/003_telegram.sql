-- Telegram side: people, chats, link codes and the outgoing message slots the sender reconciles.

CREATE TABLE users (
    telegram_id INTEGER PRIMARY KEY,
    lang        TEXT,
    first_name  TEXT,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);

CREATE TABLE chats (
    chat_id     INTEGER PRIMARY KEY,
    blocked_at  TEXT,                           -- the bot was blocked or kicked
    migrated_to INTEGER
);

CREATE TABLE link_codes (
    code       TEXT PRIMARY KEY,
    manager_id TEXT NOT NULL REFERENCES managers(id),
    created_by INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_by    INTEGER,
    used_at    TEXT
);

-- A message the bot wants a chat to show. The use case writes the wanted content (version + 1); the sender
-- sends it (no message_id yet) or edits it (sent_version < version). One row per (chat, ref), so a repeat of the
-- same notification never becomes a second message, also after a restart.
CREATE TABLE tg_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id         INTEGER NOT NULL,
    ref             TEXT NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'text' CHECK (kind IN ('text', 'photo', 'document')),
    body            TEXT NOT NULL,
    markup          TEXT,                       -- JSON inline keyboard
    file_path       TEXT,
    version         INTEGER NOT NULL DEFAULT 1,
    sent_version    INTEGER NOT NULL DEFAULT 0,
    message_id      INTEGER,
    extra_message_ids TEXT,                     -- JSON ids of the parts of a split long text
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    dead            INTEGER NOT NULL DEFAULT 0, -- undeliverable (blocked chat, permanent error)
    UNIQUE (chat_id, ref)
);
CREATE INDEX tg_messages_pending ON tg_messages(next_attempt_at, id) WHERE sent_version < version AND dead = 0;
