//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`. The operation
//! table below is the list of routes; a test requests every one of them
//! against the live router, so the document cannot drift from the code.

use serde_json::{json, Map, Value};

/// (method, path under /api/v1, summary, request schema, success status)
pub const OPERATIONS: &[(&str, &str, &str, Option<&str>, u16)] = &[
    (
        "post",
        "/swarms",
        "Create a swarm (honours Idempotency-Key)",
        Some("NewSwarm"),
        201,
    ),
    (
        "get",
        "/swarms",
        "List swarms (status, limit, cursor, sort)",
        None,
        200,
    ),
    ("get", "/swarms/{id}", "Get a swarm", None, 200),
    (
        "patch",
        "/swarms/{id}",
        "Update a swarm",
        Some("SwarmPatch"),
        200,
    ),
    (
        "delete",
        "/swarms/{id}",
        "Delete a swarm with no live agents",
        None,
        204,
    ),
    ("post", "/swarms/{id}/pause", "Pause a swarm", None, 200),
    ("post", "/swarms/{id}/resume", "Resume a swarm", None, 200),
    (
        "post",
        "/swarms/{id}/complete",
        "Mark a swarm completed",
        None,
        200,
    ),
    (
        "post",
        "/swarms/{id}/destroy",
        "Destroy a swarm and kill its live agents",
        None,
        200,
    ),
    (
        "get",
        "/swarms/{id}/agents",
        "List a swarm's agents",
        None,
        200,
    ),
    (
        "get",
        "/swarms/{id}/budget",
        "Get a swarm's budget",
        None,
        200,
    ),
    (
        "patch",
        "/swarms/{id}/budget",
        "Change a swarm's budget",
        Some("BudgetPatch"),
        200,
    ),
    (
        "post",
        "/agents",
        "Spawn an agent (honours Idempotency-Key and client ids)",
        Some("NewAgent"),
        201,
    ),
    (
        "get",
        "/agents",
        "List agents (status, swarm_id, limit, cursor, sort)",
        None,
        200,
    ),
    ("get", "/agents/{id}", "Get an agent", None, 200),
    (
        "delete",
        "/agents/{id}",
        "Delete an agent that is not running",
        None,
        204,
    ),
    ("post", "/agents/{id}/kill", "Kill an agent", None, 200),
    ("post", "/agents/{id}/pause", "Pause an agent", None, 200),
    ("post", "/agents/{id}/resume", "Resume an agent", None, 200),
    (
        "post",
        "/agents/{id}/start",
        "Worker: start a pending agent",
        None,
        200,
    ),
    (
        "post",
        "/agents/{id}/progress",
        "Worker: report progress and cost",
        Some("ProgressReport"),
        200,
    ),
    (
        "post",
        "/agents/{id}/complete",
        "Worker: complete, with final cost and result",
        Some("Outcome"),
        200,
    ),
    (
        "post",
        "/agents/{id}/fail",
        "Worker: fail (retried while retries remain)",
        Some("Outcome"),
        200,
    ),
    (
        "get",
        "/events",
        "Events after a cursor (after, limit, swarm_id, agent_id), or the newest ones (newest=true)",
        None,
        200,
    ),
    (
        "get",
        "/events/stream",
        "Live event stream (SSE); resumes from Last-Event-ID",
        None,
        200,
    ),
    (
        "get",
        "/admin/pool",
        "This process's pool, the cluster-wide pool setting and every API instance with the size it applied (token required)",
        None,
        200,
    ),
    (
        "put",
        "/admin/pool",
        "Resize the pool live on every API process: applied here at once, kept in the database, followed by every process within a second or so (token required)",
        Some("PoolSize"),
        200,
    ),
    (
        "get",
        "/admin/maintenance",
        "Maintenance mode here and in the cluster setting, and every API instance with what it applied (token required)",
        None,
        200,
    ),
    (
        "put",
        "/admin/maintenance",
        "Turn read-only maintenance mode on or off on every API process: applied here at once, even when the database is out of reach (then cluster_wide is false) (token required)",
        Some("Maintenance"),
        200,
    ),
    ("get", "/openapi.json", "This document", None, 200),
];

/// `schema`, also accepting `null` (which the server reads as "not given").
fn nullable(mut schema: Value) -> Value {
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        schema["type"] = json!([t, "null"]);
    }
    if let Some(e) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        e.push(Value::Null);
    }
    schema
}

/// Text of at most `max` characters without NUL (PostgreSQL refuses it).
fn text(max: usize) -> Value {
    json!({ "type": "string", "maxLength": max, "pattern": "^[^\\u0000]*$" })
}

fn schemas() -> Value {
    use dash_core::validate::{MAX_AGENTS_RANGE, MAX_MONEY, MAX_NAME_CHARS, MAX_RETRIES_RANGE};
    let money = json!({ "type": "number", "minimum": 0, "maximum": MAX_MONEY });
    let allocated = json!({ "type": "number", "minimum": 0, "maximum": MAX_MONEY,
        "description": "Spending limit; 0 means unlimited (the budget never warns, pauses or runs out)." });
    let fraction = json!({ "type": "number", "exclusiveMinimum": 0, "maximum": 1,
        "description": "A fraction of allocated; warning_threshold may not exceed critical_threshold." });
    let currency = json!({ "type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 code, default USD." });
    let strategy =
        json!({ "type": "string", "enum": ["parallel", "map-reduce", "pipeline", "tree"] });
    let name = json!({ "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS,
        "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
        "description": "1 to 200 characters once surrounding whitespace is trimmed; no control characters." });
    let uuid = json!({ "type": "string", "format": "uuid" });
    let config = json!({ "type": "object", "additionalProperties": false, "properties": {
        "model": nullable(text(200)),
        "max_agents": nullable(json!({ "type": "integer", "minimum": MAX_AGENTS_RANGE.start(), "maximum": MAX_AGENTS_RANGE.end() })) } });
    let json_value = "Any JSON; no NUL character in strings and keys, numbers within what an f64 can read back (about ±1.7e308).";
    json!({
        "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object",
            "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
        "NewSwarm": { "type": "object", "additionalProperties": false, "required": ["name", "strategy"], "properties": {
            "id": nullable(uuid.clone()), "name": name, "task": text(100_000), "strategy": strategy,
            "config": nullable(config.clone()),
            "budget": nullable(json!({ "type": "object", "additionalProperties": false, "required": ["allocated"], "properties": {
                "allocated": allocated, "currency": nullable(currency.clone()),
                "warning_threshold": nullable(fraction.clone()), "critical_threshold": nullable(fraction.clone()) } })) } },
        "SwarmPatch": { "type": "object", "additionalProperties": false, "properties": {
            "name": nullable(name), "task": nullable(text(100_000)), "strategy": nullable(strategy), "config": nullable(config) } },
        "BudgetPatch": { "type": "object", "additionalProperties": false, "properties": {
            "allocated": nullable(allocated), "currency": nullable(currency), "warning_threshold": nullable(fraction.clone()),
            "critical_threshold": nullable(fraction) } },
        "NewAgent": { "type": "object", "additionalProperties": false, "required": ["task"], "properties": {
            "id": nullable(uuid.clone()), "swarm_id": nullable(uuid),
            "task": { "type": "string", "minLength": 1, "maxLength": 100_000, "pattern": "^[^\\u0000]*\\S[^\\u0000]*$",
                      "description": "Not empty or only whitespace." },
            "model": nullable(text(200)),
            "max_retries": nullable(json!({ "type": "integer", "minimum": MAX_RETRIES_RANGE.start(), "maximum": MAX_RETRIES_RANGE.end() })),
            "metadata": nullable(json!({ "type": "object", "description": json_value })) } },
        "ProgressReport": { "type": "object", "additionalProperties": false, "properties": {
            "progress": nullable(json!({ "type": "number", "minimum": 0, "maximum": 1 })), "cost": nullable(money.clone()),
            "message": nullable(text(10_000)) } },
        "Outcome": { "type": "object", "additionalProperties": false, "properties": {
            "cost": nullable(money), "error": nullable(text(10_000)), "result": { "description": json_value } } },
        "PoolSize": { "type": "object", "additionalProperties": false, "required": ["size"], "properties": {
            "size": { "type": "integer", "minimum": 1, "maximum": 1000 } } },
        "Maintenance": { "type": "object", "additionalProperties": false, "required": ["enabled"], "properties": {
            "enabled": { "type": "boolean" },
            "reason": nullable(json!({ "type": "string", "maxLength": 500, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
                "description": "Shown in every refused write; default maintenance." })) } },
    })
}

/// The answers of the `/admin` calls (the cluster-wide settings).
fn admin_schemas() -> Value {
    let int = json!({ "type": "integer" });
    let time = json!({ "type": "string", "format": "date-time" });
    let text = json!({ "type": "string" });
    let pool = json!({ "type": "object", "description": "This process's pool: max_size, size, idle, in_use, waiting." });
    let instance = json!({ "type": "object", "description": "The process that answered.", "properties": {
        "id": { "type": "string", "format": "uuid" }, "host": text, "pid": int } });
    let cluster = json!({ "type": ["object", "null"], "description": "The settings row every API process follows; null when the database could not be read or written.",
        "properties": { "enabled": { "type": "boolean" }, "reason": nullable(text.clone()), "pool_size": nullable(int.clone()),
            "version": int, "changed_at": time, "changed_by": { "type": "string", "description": "Who: X-Dash-Actor, a short keyed token fingerprint, the process that took the call." } } });
    let instances = json!({ "type": "array", "description": "Every API process seen in the last hour, the live ones (reported within 5 s) first.",
        "items": { "type": "object", "properties": { "id": { "type": "string", "format": "uuid" }, "host": text, "pid": int,
            "started_at": time, "last_seen": time, "seen_secs_ago": { "type": "number" }, "live": { "type": "boolean" },
            "maintenance": { "type": "boolean" }, "reason": nullable(text.clone()), "pool_size": int, "settings_version": int,
            "applied": { "type": "boolean", "description": "It applies the cluster setting." },
            "this": { "type": "boolean", "description": "The process that answered." } } } });
    let view = json!({ "cluster": cluster, "instances": instances,
        "all_applied": { "type": ["boolean", "null"], "description": "Every live instance applies the cluster setting; null when it could not be read." },
        "cluster_wide": { "type": "boolean", "description": "The cluster setting could be read and this process has no change the database has not taken." } });
    let change = json!({ "cluster": cluster,
        "cluster_wide": { "type": "boolean", "description": "The change reached the settings row; false: the database is out of reach, it applies on this process only until the database answers." },
        "note": { "type": "string", "description": "Present when cluster_wide is false." } });
    let object = |base: Value, extra: Value| json!({ "type": "object", "properties": object_props(&base, extra) });
    let here_m = json!({ "enabled": { "type": "boolean", "description": "On this process." }, "reason": nullable(text.clone()), "instance": instance });
    json!({
        "AdminMaintenance": object(object_props(&here_m, json!({ "pool": pool })), view.clone()),
        "AdminMaintenanceChange": object(here_m, change.clone()),
        "AdminPool": object(json!({ "pool": pool, "primary": nullable(text), "instance": instance }), view),
        "AdminPoolChange": object(json!({ "previous_max_size": int, "pool": pool, "instance": instance }), change),
    })
}

/// `base`'s fields with `extra`'s added.
fn object_props(base: &Value, extra: Value) -> Value {
    let mut b = base.clone();
    if let (Some(m), Value::Object(e)) = (b.as_object_mut(), extra) {
        m.extend(e);
    }
    b
}

/// The schema of an `/admin` call's success answer.
fn admin_answer(method: &str, path: &str) -> Option<&'static str> {
    match (method, path) {
        ("get", "/admin/maintenance") => Some("AdminMaintenance"),
        ("put", "/admin/maintenance") => Some("AdminMaintenanceChange"),
        ("get", "/admin/pool") => Some("AdminPool"),
        ("put", "/admin/pool") => Some("AdminPoolChange"),
        _ => None,
    }
}

/// The query parameters of a list of `statuses`.
fn list_parameters(statuses: &[&str], by_swarm: bool) -> Vec<Value> {
    let mut p = vec![
        json!({ "name": "status", "in": "query", "schema": { "type": "string", "enum": statuses } }),
        json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1,
                "maximum": dash_core::page::MAX_LIMIT, "default": dash_core::page::DEFAULT_LIMIT } }),
        json!({ "name": "cursor", "in": "query", "schema": { "type": "string",
                "maxLength": dash_core::page::MAX_CURSOR_LEN } }),
        json!({ "name": "sort", "in": "query", "schema": { "type": "string", "enum": ["created_at", "-created_at"] } }),
    ];
    if by_swarm {
        p.push(json!({ "name": "swarm_id", "in": "query", "schema": { "type": "string", "format": "uuid" } }));
    }
    p
}

/// The operation's parameters: its path id, list and event queries,
/// `Idempotency-Key`, `Last-Event-ID`.
fn parameters(method: &str, path: &str) -> Vec<Value> {
    let mut p = Vec::new();
    if path.contains("{id}") {
        p.push(json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }));
    }
    let swarm: Vec<&str> = dash_core::SwarmStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    let agent: Vec<&str> = dash_core::AgentStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    match (method, path) {
        ("get", "/swarms") => p.extend(list_parameters(&swarm, false)),
        ("get", "/agents") => p.extend(list_parameters(&agent, true)),
        ("get", "/swarms/{id}/agents") => p.extend(list_parameters(&agent, false)),
        ("get", "/events" | "/events/stream") => {
            p.extend([
                json!({ "name": "after", "in": "query", "description": "An event's `cursor`: the events after it; omitted or `0`: from the start of the log",
                        "schema": { "type": "string" } }),
                json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1,
                        "maximum": dash_core::page::MAX_LIMIT, "default": dash_core::page::DEFAULT_LIMIT } }),
                json!({ "name": "swarm_id", "in": "query", "schema": { "type": "string", "format": "uuid" } }),
                json!({ "name": "agent_id", "in": "query", "schema": { "type": "string", "format": "uuid" } }),
                json!({ "name": "newest", "in": "query", "description": "`true`: the newest `limit` events, in log order, instead of those after a cursor",
                        "schema": { "type": "boolean" } }),
            ]);
            if path == "/events/stream" {
                p.push(json!({ "name": "Last-Event-ID", "in": "header",
                    "description": "Resume after this event (what an EventSource sends on reconnect)",
                    "schema": { "type": "string" } }));
            }
        }
        ("post", "/swarms" | "/agents") => p.push(json!({ "name": "Idempotency-Key", "in": "header",
            "description": "Retrying with the same key and body replays the first answer; another body is refused (409).",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255 } })),
        _ => {}
    }
    p
}

/// The OpenAPI document. Reads are open unless `auth_reads`
/// (`DASH_AUTH_READS`); admin calls and every change need a token.
pub fn document(auth_reads: bool) -> Value {
    let error =
        json!({ "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } });
    let mut paths = Map::new();
    for (method, path, summary, request, ok) in OPERATIONS {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let mut op = json!({
            "summary": summary,
            "responses": {
                ok.to_string(): { "description": "success" },
                "4XX": { "description": "client error", "content": error },
                "503": { "description": "database_unavailable, pool_exhausted (every connection busy), maintenance or timeout; retry after Retry-After",
                         "content": error },
            }
        });
        if *method == "post" && (*path == "/swarms" || *path == "/agents") {
            op["responses"]["200"] = json!({ "description": "A replay: the same Idempotency-Key and body again \
                (header Idempotent-Replayed: true, the first answer), or a client id that already exists with the same content" });
        }
        let params = parameters(method, path);
        if !params.is_empty() {
            op["parameters"] = json!(params);
        }
        if let Some(schema) = request {
            op["requestBody"] = json!({ "required": *method != "post" || !path.ends_with("complete") && !path.ends_with("fail"),
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
            op["responses"]["415"] =
                json!({ "description": "a body whose Content-Type is not JSON", "content": error });
        }
        if let Some(schema) = admin_answer(method, path) {
            op["responses"][ok.to_string()]["content"] = json!({ "application/json": { "schema":
                { "$ref": format!("#/components/schemas/{schema}") } } });
        }
        if *method == "get" && !path.starts_with("/admin") && !auth_reads {
            op["security"] = json!([]);
        }
        entry[*method] = op;
    }
    let access = if auth_reads {
        "Every call needs Authorization: Bearer <token> (DASH_AUTH_READS is on)."
    } else {
        "Reads are open; changes and /admin need Authorization: Bearer <token>."
    };
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Dash API", "version": env!("CARGO_PKG_VERSION"),
                  "description": format!("Swarms, agents, budgets and events. {access} Every route is also served under /api. \
                    Optional fields may be null, which means the same as leaving them out.") },
        "servers": [{ "url": "/api/v1" }],
        "components": { "schemas": object_props(&schemas(), admin_schemas()),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
        "security": [{ "bearer": [] }],
        "paths": paths,
    })
}
