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

fn schemas() -> Value {
    let money = json!({ "type": "number", "minimum": 0 });
    let fraction = json!({ "type": "number", "exclusiveMinimum": 0, "maximum": 1 });
    let strategy =
        json!({ "type": "string", "enum": ["parallel", "map-reduce", "pipeline", "tree"] });
    let config = json!({ "type": "object", "additionalProperties": false, "properties": {
        "model": { "type": "string" }, "max_agents": { "type": "integer", "minimum": 1, "maximum": 10000 } } });
    json!({
        "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object",
            "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
        "NewSwarm": { "type": "object", "additionalProperties": false, "required": ["name", "strategy"], "properties": {
            "id": { "type": "string", "format": "uuid" }, "name": { "type": "string", "maxLength": 200 },
            "task": { "type": "string" }, "strategy": strategy, "config": config,
            "budget": { "type": "object", "additionalProperties": false, "required": ["allocated"], "properties": {
                "allocated": money, "currency": { "type": "string", "pattern": "^[A-Z]{3}$" },
                "warning_threshold": fraction, "critical_threshold": fraction } } } },
        "SwarmPatch": { "type": "object", "additionalProperties": false, "properties": {
            "name": { "type": "string" }, "task": { "type": "string" }, "strategy": strategy, "config": config } },
        "BudgetPatch": { "type": "object", "additionalProperties": false, "properties": {
            "allocated": money, "currency": { "type": "string" }, "warning_threshold": fraction, "critical_threshold": fraction } },
        "NewAgent": { "type": "object", "additionalProperties": false, "required": ["task"], "properties": {
            "id": { "type": "string", "format": "uuid" }, "swarm_id": { "type": "string", "format": "uuid" },
            "task": { "type": "string" }, "model": { "type": "string" },
            "max_retries": { "type": "integer", "minimum": 0, "maximum": 100 }, "metadata": { "type": "object" } } },
        "ProgressReport": { "type": "object", "additionalProperties": false, "properties": {
            "progress": { "type": "number", "minimum": 0, "maximum": 1 }, "cost": money, "message": { "type": "string" } } },
        "Outcome": { "type": "object", "additionalProperties": false, "properties": {
            "cost": money, "error": { "type": "string" }, "result": {} } },
        "PoolSize": { "type": "object", "additionalProperties": false, "required": ["size"], "properties": {
            "size": { "type": "integer", "minimum": 1, "maximum": 1000 } } },
        "Maintenance": { "type": "object", "additionalProperties": false, "required": ["enabled"], "properties": {
            "enabled": { "type": "boolean" }, "reason": { "type": "string" } } },
    })
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, request, ok) in OPERATIONS {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let mut op = json!({
            "summary": summary,
            "responses": {
                ok.to_string(): { "description": "success" },
                "4XX": { "description": "client error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "503": { "description": "database unavailable or maintenance; retry after Retry-After", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
            }
        });
        if path.contains("{id}") {
            op["parameters"] = json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }]);
        }
        if let Some(schema) = request {
            op["requestBody"] = json!({ "required": *method != "post" || !path.ends_with("complete") && !path.ends_with("fail"),
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
        }
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Dash API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Swarms, agents, budgets and events. Mutating calls need Authorization: Bearer <token>. Every route is also served under /api." },
        "servers": [{ "url": "/api/v1" }],
        "components": { "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
        "security": [{ "bearer": [] }],
        "paths": paths,
    })
}
