"""The SQLite schema, as numbered migrations applied in order at start-up."""

MIGRATIONS: tuple[str, ...] = (
    # 1: keys, their history, usage totals and hourly buckets, and the change counter.
    """
    CREATE TABLE keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        lookup_hash TEXT NOT NULL UNIQUE,
        sealed_value BLOB NOT NULL,
        masked_value TEXT NOT NULL,
        permissions TEXT NOT NULL,
        admin INTEGER NOT NULL,
        not_valid_before TEXT,
        not_valid_after TEXT,
        allowed_ips TEXT NOT NULL,
        description TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        deleted_at TEXT
    );
    CREATE TABLE key_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key_id TEXT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        changes TEXT NOT NULL
    );
    CREATE INDEX key_history_by_key ON key_history (key_id, id);
    CREATE TABLE key_usage (
        key_id TEXT PRIMARY KEY,
        usage_count INTEGER NOT NULL DEFAULT 0,
        denied_count INTEGER NOT NULL DEFAULT 0,
        last_used_at TEXT
    );
    CREATE TABLE usage_hourly (
        key_id TEXT NOT NULL,
        hour TEXT NOT NULL,
        allowed INTEGER NOT NULL DEFAULT 0,
        denied INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (key_id, hour)
    );
    CREATE TABLE key_version (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO key_version (id, version) VALUES (1, 0);
    """,
    # 2: rotation keeps the previous value's hash working until its grace period ends.
    """
    ALTER TABLE keys ADD COLUMN previous_lookup_hash TEXT;
    ALTER TABLE keys ADD COLUMN previous_valid_until TEXT;
    CREATE INDEX keys_by_previous_hash ON keys (previous_lookup_hash);
    """,
    # 3: a key's rate limit; both NULL means no limit.
    """
    ALTER TABLE keys ADD COLUMN rate_limit_requests INTEGER;
    ALTER TABLE keys ADD COLUMN rate_limit_per_seconds INTEGER;
    """,
)
