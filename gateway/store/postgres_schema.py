"""The PostgreSQL schema, as numbered migrations applied in order at start-up.

The numbers and meanings follow the SQLite schema, so that a store can move
from one to the other: same tables, same columns, PostgreSQL's own types.
"""

# Taken (for the length of one transaction) by every instance before it
# migrates, so that gateways starting together apply each migration once.
MIGRATION_LOCK = 0x5347_5357_0001  # "SGSW" 1

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: keys, their history, usage totals and hourly buckets, and the change counter.
    """
    CREATE TABLE keys (
        id text PRIMARY KEY,
        name text NOT NULL,
        lookup_hash text NOT NULL UNIQUE,
        sealed_value bytea NOT NULL,
        masked_value text NOT NULL,
        permissions jsonb NOT NULL,
        admin boolean NOT NULL,
        not_valid_before timestamptz,
        not_valid_after timestamptz,
        allowed_ips jsonb NOT NULL,
        description text NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        created_by text NOT NULL,
        deleted_at timestamptz
    );
    -- json, not jsonb: a change is shown as it was recorded, object key order included.
    CREATE TABLE key_history (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key_id text NOT NULL,
        at timestamptz NOT NULL,
        actor text NOT NULL,
        action text NOT NULL,
        changes json NOT NULL
    );
    CREATE INDEX key_history_by_key ON key_history (key_id, id);
    CREATE TABLE key_usage (
        key_id text PRIMARY KEY,
        usage_count bigint NOT NULL DEFAULT 0,
        denied_count bigint NOT NULL DEFAULT 0,
        last_used_at timestamptz
    );
    CREATE TABLE usage_hourly (
        key_id text NOT NULL,
        hour timestamptz NOT NULL,
        allowed bigint NOT NULL DEFAULT 0,
        denied bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (key_id, hour)
    );
    CREATE TABLE key_version (
        id integer PRIMARY KEY CHECK (id = 1),
        version bigint NOT NULL
    );
    INSERT INTO key_version (id, version) VALUES (1, 0);
    """,
    # 2: rotation keeps the previous value's hash working until its grace period ends.
    """
    ALTER TABLE keys ADD COLUMN previous_lookup_hash text;
    ALTER TABLE keys ADD COLUMN previous_valid_until timestamptz;
    CREATE INDEX keys_by_previous_hash ON keys (previous_lookup_hash);
    """,
    # 3: a key's rate limit; both NULL means no limit.
    """
    ALTER TABLE keys ADD COLUMN rate_limit_requests integer;
    ALTER TABLE keys ADD COLUMN rate_limit_per_seconds integer;
    ALTER TABLE keys ADD CONSTRAINT keys_rate_limit_whole
        CHECK ((rate_limit_requests IS NULL) = (rate_limit_per_seconds IS NULL));
    """,
)
