//! Sends a request and checks its answer against the served document: the
//! status is one the operation lists, and the body is valid against the
//! schema declared for that status.

use std::collections::BTreeSet;

use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{self, TestApp, TOKEN};

/// The routes served at the root, outside `/api/v1`.
pub const ROOT_ROUTES: [&str; 3] = ["/livez", "/health", "/ready"];

/// What a request carries.
pub enum Body {
    Empty,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

/// A JSON body.
pub fn j(v: Value) -> Body {
    Body::Json(v)
}

/// The served document, and the (method, path, status) answers checked so far.
pub struct Conformance<'a> {
    pub app: &'a TestApp,
    pub doc: Value,
    /// The components' schemas, referred to as `#/$defs/...`.
    defs: Value,
    pub seen: BTreeSet<(String, String, u16)>,
}

/// `#/components/schemas/X` becomes `#/$defs/X`, so a schema carries what it refers to.
fn to_defs(v: &Value) -> Value {
    let text = v.to_string().replace("#/components/schemas/", "#/$defs/");
    serde_json::from_str(&text).unwrap()
}

impl<'a> Conformance<'a> {
    pub async fn new(app: &'a TestApp) -> Conformance<'a> {
        let r = app.client.get(app.url("/openapi.json")).bearer_auth(TOKEN);
        let (st, doc) = common::split(r.send().await.unwrap()).await;
        assert_eq!(st, 200, "{doc}");
        let defs = to_defs(&doc["components"]["schemas"]);
        let seen = BTreeSet::new();
        Conformance {
            app,
            doc,
            defs,
            seen,
        }
    }

    /// Sends `route` ("post /swarms/{id}", `{id}` replaced by `id`, a query
    /// after the path allowed), checks the answer and returns it.
    pub async fn call(&mut self, route: &str, id: &str, body: Body, token: bool) -> (u16, Value) {
        let (m, target) = route.split_once(' ').unwrap();
        let path = target.split('?').next().unwrap();
        let concrete = target.replace("{id}", id);
        let url = match ROOT_ROUTES.contains(&path) {
            true => format!("{}{concrete}", self.app.base),
            false => self.app.url(&concrete),
        };
        let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
        let mut rb = self.app.client.request(method, url);
        if token {
            rb = rb.bearer_auth(TOKEN);
        }
        rb = match body {
            Body::Empty => rb,
            Body::Json(v) => rb.json(&v),
            Body::Raw(ct, bytes) => rb.header(CONTENT_TYPE, ct).body(bytes),
        };
        let r = rb.send().await.unwrap();
        let ct = r
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        let (st, b) = match ct.as_deref() {
            // A live stream: its body never ends.
            Some("text/event-stream") => (r.status().as_u16(), Value::Null),
            _ => common::split(r).await,
        };
        self.check(m, path, st, ct.as_deref().unwrap_or_default(), &b);
        (st, b)
    }

    /// [`Conformance::call`] with the token, asserting the status.
    pub async fn expect(&mut self, want: u16, route: &str, id: &str, body: Body) -> Value {
        let (st, b) = self.call(route, id, body, true).await;
        assert_eq!(st, want, "{route} ({id}): {b}");
        b
    }

    /// [`Conformance::expect`] without a body.
    pub async fn plain(&mut self, want: u16, route: &str, id: &str) -> Value {
        self.expect(want, route, id, Body::Empty).await
    }

    pub fn check(&mut self, m: &str, path: &str, st: u16, content_type: &str, body: &Value) {
        assert_ne!(body["error"]["code"], "route_not_found", "{m} {path}");
        let op = &self.doc["paths"][path][m];
        assert!(op.is_object(), "{m} {path} is not documented");
        let Some(answer) = op["responses"].get(st.to_string()) else {
            panic!("{m} {path} answered {st}, a status its operation does not list: {body}");
        };
        self.seen.insert((m.to_string(), path.to_string(), st));
        let Some(content) = answer.get("content").and_then(Value::as_object) else {
            assert!(
                body.is_null(),
                "{m} {path} {st}: an undocumented body: {body}"
            );
            return;
        };
        let declared = (content.iter()).find(|(media, _)| content_type.starts_with(media.as_str()));
        let Some((media, declared)) = declared else {
            panic!("{m} {path} {st}: {content_type} is not documented");
        };
        let Some(schema) = declared
            .get("schema")
            .filter(|_| media == "application/json")
        else {
            return;
        };
        let schema = json!({ "$defs": self.defs, "allOf": [to_defs(schema)] });
        let (mut compiler, mut schemas) = (boon::Compiler::new(), boon::Schemas::new());
        compiler.enable_format_assertions();
        let loc = "http://127.0.0.1/answer.json";
        compiler.add_resource(loc, schema).unwrap();
        let compiled = compiler.compile(loc, &mut schemas);
        let index = compiled.unwrap_or_else(|e| panic!("{m} {path} {st}: bad schema: {e:#}"));
        let errors = schemas.validate(body, index).map_err(|e| format!("{e:#}"));
        assert!(errors.is_ok(), "{m} {path} {st}: {errors:?} in {body}");
    }

    /// Creates a swarm and returns its id.
    pub async fn swarm(&mut self) -> String {
        let b = json!({"name": "s", "strategy": "tree", "budget": {"allocated": 10}});
        let s = self.expect(201, "post /swarms", "", j(b)).await;
        s["id"].as_str().unwrap().to_string()
    }

    /// Spawns an agent in `swarm` and returns its id.
    pub async fn agent(&mut self, swarm: &str) -> String {
        let a = json!({"task": "t", "swarm_id": swarm, "metadata": {"k": 1}});
        let a = self.expect(201, "post /agents", "", j(a)).await;
        a["id"].as_str().unwrap().to_string()
    }

    /// Sends `body` to `route` twice with one client id: 201, then 200.
    pub async fn twice(&mut self, route: &str, mut body: Value) {
        body["id"] = json!(uuid::Uuid::new_v4());
        self.expect(201, route, "", j(body.clone())).await;
        self.expect(200, route, "", j(body)).await;
    }

    /// Sends `body` to `route` twice with one Idempotency-Key: the first
    /// answer, then its replay.
    pub async fn replayed(&mut self, route: &str, body: Value) {
        let path = route.split_once(' ').unwrap().1;
        let key = [("Idempotency-Key", path)];
        for replay in [false, true] {
            let (st, h, b) = self.app.post_with(path, body.clone(), &key).await;
            assert_eq!(
                (st, h.contains_key("idempotent-replayed")),
                (201, replay),
                "{b}"
            );
            self.check("post", path, st, h[CONTENT_TYPE].to_str().unwrap(), &b);
        }
    }
}
