-- Dash schema v3: agents that workers run (`dashctl worker`).
--
-- A claim increments `attempt` and takes a lease; every heartbeat, report
-- and completion names (id, attempt) and needs status 'running', so a
-- worker whose lease was lost or reclaimed changes nothing. `not_before`
-- delays a retry. `agent_usage` records each cost report once per message
-- id, so a report retried across a failover is never charged twice.

ALTER TABLE agents
    ADD COLUMN attempt          integer NOT NULL DEFAULT 0,
    ADD COLUMN worker           text CHECK (char_length(worker) <= 200),
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN not_before       timestamptz NOT NULL DEFAULT now();

-- What a claim scans: pending agents, oldest first.
CREATE INDEX agents_claimable ON agents (spawned_at, id) WHERE status = 'pending';
-- What the reaper scans, and the running counts the caps check.
CREATE INDEX agents_running ON agents (swarm_id, lease_expires_at) WHERE status = 'running';

CREATE TABLE agent_usage (
    agent_id    uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    message_id  text NOT NULL CHECK (char_length(message_id) BETWEEN 1 AND 200),
    attempt     integer NOT NULL,
    tokens      bigint NOT NULL DEFAULT 0 CHECK (tokens >= 0),
    cost        double precision NOT NULL DEFAULT 0 CHECK (cost >= 0),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, message_id)
);

-- A wake-up hint for workers (they poll as well: a listener can die
-- silently across a failover).
CREATE FUNCTION dash_agents_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'pending' THEN
        PERFORM pg_notify('dash_agents', '');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER agents_notify AFTER INSERT OR UPDATE OF status ON agents
    FOR EACH ROW EXECUTE FUNCTION dash_agents_notify();
