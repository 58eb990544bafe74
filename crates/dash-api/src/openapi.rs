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
        "Pool status (token required)",
        None,
        200,
    ),
    (
        "put",
        "/admin/pool",
        "Resize the pool live (token required)",
        Some("PoolSize"),
        200,
    ),
    (
        "get",
        "/admin/maintenance",
        "Maintenance mode (token required)",
        None,
        200,
    ),
    (
        "put",
        "/admin/maintenance",
        "Turn read-only maintenance mode on or off (token required)",
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
            "enabled": { "type": "boolean" }, "reason": nullable(json!({ "type": "string" })) } },
    })
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

/// The operation's parameters: its path id, list queries, `Idempotency-Key`.
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
        "components": { "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
        "security": [{ "bearer": [] }],
        "paths": paths,
    })
}
