-- Dash schema v4: a list of one swarm's agents in one status (the
-- dashboard's and `dashctl agent list --swarm S --status X`'s page) reads
-- its 50 rows straight from an index instead of filtering a swarm's
-- agents by status.

CREATE INDEX IF NOT EXISTS agents_swarm_status_spawned ON agents (swarm_id, status, spawned_at, id);
