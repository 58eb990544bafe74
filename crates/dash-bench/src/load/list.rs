//! The list-agents workload: one swarm's pending agents, 50 a page, as
//! `GET /api/v1/agents?swarm_id=S&status=pending&limit=50` asks and as
//! `dash-store`'s `list_agents` runs it (one statement per filter
//! combination; this one filters by status and swarm, oldest first, and
//! fetches one row more than the page to know whether another follows).
//! The swarms and agents it reads are seeded with SQL (`bench compare`,
//! the same rows for the API and pgbench) or through the API (`bench api`).

use std::sync::Arc;

use uuid::Uuid;

use super::driver::Ctx;
use super::pgbench::AGENT_COLUMNS;
use super::seed::post_all;
use super::LoadError;

/// Rows a page asks for (`limit=50`).
pub const PAGE: usize = 50;
/// Swarms the workload lists, one chosen at random per request.
pub const SWARMS: u64 = 20;
/// Agents of each seeded swarm (SQL seed): half pending, half completed, so
/// every page is full (at least `PAGE + 1` pending) and the status filter
/// has rows to skip.
pub const AGENTS_PER_SWARM: u64 = 400;
/// Pending agents per swarm when seeding through the API (one POST each).
pub const HTTP_PENDING_PER_SWARM: usize = 60;
// Every seeded swarm has more pending agents than a page and one.
const _: () = assert!(AGENTS_PER_SWARM / 2 > PAGE as u64 && HTTP_PENDING_PER_SWARM > PAGE);

/// Seeded agents' ids start after this, clear of the get-agent seeds.
const AGENT_ID_BASE: u64 = 1 << 32;

/// The id of seeded swarm `n` (1-based): `0000...000n`, as the SQL seed
/// and the pgbench script spell it.
pub fn swarm_id(n: u64) -> Uuid {
    Uuid::from_u128(u128::from(n))
}

/// The swarms the workload lists: `1..=SWARMS`.
pub fn listed_swarms() -> Vec<Uuid> {
    (1..=SWARMS).map(swarm_id).collect()
}

/// SQL for the uuid `0000...000n` of the bigint expression `n`.
pub(crate) fn id_sql(n: &str) -> String {
    format!("lpad(to_hex({n}::bigint), 32, '0')::uuid")
}

/// The SELECT the API runs for the first page of `swarm_id` in `status`
/// (`$1 = status`, `$2 = swarm_id`, `$3 = limit + 1`), with the swarm and the
/// status inlined and `LIMIT 51`, as pgbench repeats it.
pub fn select_sql(swarm: &str) -> String {
    format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE status = 'pending' AND swarm_id = {swarm} \
         ORDER BY spawned_at ASC, id ASC LIMIT {}",
        PAGE + 1
    )
}

/// The pgbench script: a page of one of `swarms` seeded swarms.
pub fn script(swarms: u64) -> String {
    format!(
        "\\set s random(1, {swarms})\n{};\n",
        select_sql(&id_sql(":s"))
    )
}

/// Seeds `2 * SWARMS` swarms (the listed ones and as many others) and
/// `AGENTS_PER_SWARM` agents in each, alternately pending and completed,
/// spawned a millisecond apart: one INSERT per table, idempotent.
pub fn seed_sql() -> String {
    let all = 2 * SWARMS;
    let agents = all * AGENTS_PER_SWARM;
    format!(
        "INSERT INTO swarms (id, name, strategy, max_agents) \
         SELECT {}, 'dashctl bench list ' || g, 'parallel', 10000 \
         FROM generate_series(1::bigint, {all}) g ON CONFLICT (id) DO NOTHING;\n\
         INSERT INTO agents (id, swarm_id, task, status, spawned_at, started_at, completed_at) \
         SELECT {}, {}, 'dashctl bench list seed', s.status, t, \
         CASE s.status WHEN 'completed' THEN t END, CASE s.status WHEN 'completed' THEN t END \
         FROM generate_series(1::bigint, {agents}) g, \
         LATERAL (SELECT CASE (g / {all}) % 2 WHEN 0 THEN 'pending' ELSE 'completed' END AS status, \
         now() - g * interval '1 millisecond' AS t) s \
         ON CONFLICT (id) DO NOTHING;\n",
        id_sql("g"),
        id_sql(&format!("{AGENT_ID_BASE} + g")),
        id_sql(&format!("1 + g % {all}")),
    )
}

/// The URL of the page the workload asks for.
pub(super) fn page_url(base: &str, swarm: Uuid) -> String {
    format!("{base}/api/v1/agents?swarm_id={swarm}&status=pending&limit={PAGE}")
}

/// Whether a 200's body is a full page: `items` with `PAGE` entries.
pub(super) fn full_page(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Page {
        items: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Page>(body).is_ok_and(|p| p.items.len() == PAGE)
}

/// Creates `SWARMS` swarms and `HTTP_PENDING_PER_SWARM` pending agents in
/// each through the API, unmeasured; returns the swarms' ids.
pub(super) async fn seed_over_http(ctx: &Arc<Ctx>) -> Result<Vec<Uuid>, LoadError> {
    let swarms: Vec<Uuid> = (0..SWARMS).map(|_| Uuid::new_v4()).collect();
    let url = format!("{}/api/v1/swarms", ctx.base);
    let bodies = swarms.iter().map(|id| {
        let body = serde_json::json!({
            "id": id, "name": format!("dashctl bench list {id}"), "strategy": "parallel",
            "config": { "max_agents": 10_000 },
        });
        (url.clone(), body.to_string())
    });
    post_all(ctx, bodies.collect()).await?;
    let url = &format!("{}/api/v1/agents", ctx.base);
    let task = &ctx.config.task;
    let bodies = swarms.iter().flat_map(|s| {
        (0..HTTP_PENDING_PER_SWARM).map(move |_| {
            let body = serde_json::json!({ "id": Uuid::new_v4(), "swarm_id": s, "task": task });
            (url.clone(), body.to_string())
        })
    });
    post_all(ctx, bodies.collect()).await?;
    Ok(swarms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_the_apis_first_page_statement() {
        let s = script(20);
        assert!(s.starts_with("\\set s random(1, 20)\n"), "{s}");
        assert!(s.contains(&format!("SELECT {AGENT_COLUMNS} FROM agents ")));
        assert!(s.contains(
            "WHERE status = 'pending' AND swarm_id = lpad(to_hex(:s::bigint), 32, '0')::uuid \
             ORDER BY spawned_at ASC, id ASC LIMIT 51;\n"
        ));
        assert_eq!(s.lines().count(), 2);
    }

    #[test]
    fn the_seed_fills_every_page_and_leaves_rows_to_filter() {
        let sql = seed_sql();
        assert_eq!(sql.matches("INSERT INTO").count(), 2, "one per table");
        assert!(sql.contains("FROM generate_series(1::bigint, 40) g ON CONFLICT (id) DO NOTHING"));
        assert!(sql.contains("'parallel', 10000"));
        assert!(sql.contains("generate_series(1::bigint, 16000) g"));
        assert!(sql.contains("lpad(to_hex(1 + g % 40::bigint), 32, '0')::uuid"));
        assert!(sql.contains("lpad(to_hex(4294967296 + g::bigint), 32, '0')::uuid"));
        assert!(sql.contains("CASE (g / 40) % 2 WHEN 0 THEN 'pending' ELSE 'completed' END"));
        assert_eq!(
            swarm_id(20).to_string(),
            "00000000-0000-0000-0000-000000000014"
        );
        assert_eq!(listed_swarms().len(), SWARMS as usize);
    }

    #[test]
    fn a_page_counts_only_when_full() {
        let page = |n: usize| {
            format!(
                r#"{{"items":[{}],"next_cursor":null}}"#,
                vec!["{}"; n].join(",")
            )
        };
        assert!(full_page(page(50).as_bytes()));
        assert!(!full_page(page(49).as_bytes()));
        assert!(!full_page(b"not json"));
        let url = page_url("http://127.0.0.1:3001", swarm_id(1));
        assert_eq!(
            url,
            "http://127.0.0.1:3001/api/v1/agents?swarm_id=00000000-0000-0000-0000-000000000001&status=pending&limit=50"
        );
    }
}
