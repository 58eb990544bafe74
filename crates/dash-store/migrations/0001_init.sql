-- Dash schema v1: swarms, agents, the event log, idempotency keys.

CREATE TABLE swarms (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL,
    task               text NOT NULL DEFAULT '',
    strategy           text NOT NULL CHECK (strategy IN ('parallel', 'map-reduce', 'pipeline', 'tree')),
    status             text NOT NULL DEFAULT 'active'
                       CHECK (status IN ('active', 'paused', 'completed', 'failed', 'destroyed')),
    model              text NOT NULL DEFAULT '',
    max_agents         integer NOT NULL DEFAULT 10 CHECK (max_agents > 0),
    budget_allocated   double precision NOT NULL DEFAULT 0 CHECK (budget_allocated >= 0),
    budget_consumed    double precision NOT NULL DEFAULT 0 CHECK (budget_consumed >= 0),
    budget_currency    text NOT NULL DEFAULT 'USD',
    budget_warning     double precision NOT NULL DEFAULT 0.75,
    budget_critical    double precision NOT NULL DEFAULT 0.90,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX swarms_created ON swarms (created_at, id);
CREATE INDEX swarms_status_created ON swarms (status, created_at, id);

CREATE TABLE agents (
    id            uuid PRIMARY KEY,
    swarm_id      uuid REFERENCES swarms (id) ON DELETE CASCADE,
    task          text NOT NULL,
    model         text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'killed')),
    retry_count   integer NOT NULL DEFAULT 0,
    max_retries   integer NOT NULL DEFAULT 3,
    progress      double precision NOT NULL DEFAULT 0,
    cost          double precision NOT NULL DEFAULT 0 CHECK (cost >= 0),
    last_error    text,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    spawned_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    completed_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_spawned ON agents (spawned_at, id);
CREATE INDEX agents_swarm_spawned ON agents (swarm_id, spawned_at, id);
CREATE INDEX agents_status_spawned ON agents (status, spawned_at, id);

-- The event log is append-only. Its order is (txid, id): a reader only sees
-- events of transactions older than every transaction still running
-- (pg_snapshot_xmin), so a cursor never skips an event that commits late.
CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid        bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    kind        text NOT NULL,
    swarm_id    uuid,
    agent_id    uuid,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_order ON events (txid, id);
CREATE INDEX events_swarm ON events (swarm_id, txid, id);

CREATE FUNCTION dash_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dash_events', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION dash_events_notify();

CREATE RULE events_no_update AS ON UPDATE TO events DO INSTEAD NOTHING;

CREATE TABLE idempotency_keys (
    scope         text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status        integer NOT NULL DEFAULT 0,
    body          jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
