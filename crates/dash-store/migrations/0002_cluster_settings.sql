-- Dash schema v2: the settings every API process follows (maintenance mode,
-- pool size), the processes that follow them, and the history of changes.
-- They live in their own schema, apart from the application's data, so that
-- a backup can leave them out and a restore never rewinds them.
-- Idempotent: safe to run again after a restore dropped the migration record.

CREATE SCHEMA IF NOT EXISTS dash_control;

-- One row: what every API process applies. NULL means "not set".
CREATE TABLE IF NOT EXISTS dash_control.settings (
    id                 boolean PRIMARY KEY DEFAULT true CHECK (id),
    maintenance_reason text CHECK (char_length(maintenance_reason) BETWEEN 1 AND 500),
    pool_size          integer CHECK (pool_size BETWEEN 1 AND 1000),
    version            bigint NOT NULL DEFAULT 0,
    changed_at         timestamptz NOT NULL DEFAULT now(),
    changed_by         text NOT NULL DEFAULT 'schema migration'
                       CHECK (char_length(changed_by) <= 300)
);
INSERT INTO dash_control.settings (id) VALUES (true) ON CONFLICT DO NOTHING;

-- Each API process, about once a second: who it is and what it has applied.
CREATE TABLE IF NOT EXISTS dash_control.instances (
    instance_id        uuid PRIMARY KEY,
    host               text NOT NULL,
    pid                integer NOT NULL,
    started_at         timestamptz NOT NULL,
    last_seen          timestamptz NOT NULL DEFAULT now(),
    maintenance_reason text,
    pool_size          integer NOT NULL,
    settings_version   bigint NOT NULL
);

-- Every change of the settings row, with who and when: the incident timeline.
CREATE TABLE IF NOT EXISTS dash_control.admin_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    setting     text NOT NULL CHECK (setting IN ('maintenance', 'pool_size', 'rewound')),
    old_value   text,
    new_value   text,
    changed_by  text NOT NULL,
    version     bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS admin_log_at ON dash_control.admin_log (at, id);
