//! A recorded fake of the Kubernetes API server: the one thing these tests
//! cannot run for real, since there is no Kubernetes API server on this
//! machine. Everything on the client side is real: kube-rs builds, sends and
//! parses every request over HTTP (plain HTTP on 127.0.0.1, with a bearer
//! token read from a token file as in a pod).
//!
//! It serves `GET` and `PATCH /api/v1/namespaces/{ns}/pods/{name}` for the
//! one pod in `tests/fixtures/pod-postgres-0.json` and records each request
//! (method, path, query, content type, authorization, body). A merge patch
//! is applied to the stored pod the way the API server does (RFC 7386), and
//! the pod is answered back. Other pods get the recorded 404 Status, and the
//! answer can be switched to a recorded Status (403) or to never answering.
//!
//! The fixtures were written by hand in the shape of a Kubernetes 1.33 API
//! server's answers (a StatefulSet pod in namespace `dash`, `Status`
//! documents); they were not captured from a live cluster.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

/// The bearer token the fake expects, as read from the token file.
pub const TOKEN: &str = "fake-service-account-token";

pub const POD: &str = include_str!("../fixtures/pod-postgres-0.json");
pub const FORBIDDEN: &str = include_str!("../fixtures/status-forbidden.json");
pub const NOT_FOUND: &str = include_str!("../fixtures/status-not-found.json");

/// How the fake answers pod requests.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// Like the API server: the stored pod, patched.
    Recorded,
    /// This status code with this recorded `Status` body.
    Status(StatusCode, &'static str),
    /// Accept the request, record it, never answer.
    Hang,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    pub body: String,
}

struct Inner {
    answer: Answer,
    pod: Value,
    requests: Vec<Recorded>,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
    token_file: tempfile::NamedTempFile,
}

impl FakeApiServer {
    /// Starts the fake on a free port of 127.0.0.1, answering `Recorded`.
    pub async fn start() -> FakeApiServer {
        let shared = Arc::new(Mutex::new(Inner {
            answer: Answer::Recorded,
            pod: serde_json::from_str(POD).expect("pod fixture is JSON"),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}",
                get(pod_request).patch(pod_request),
            )
            .fallback(unexpected)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let token_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token_file.path(), TOKEN).unwrap();
        FakeApiServer {
            addr,
            shared,
            task,
            token_file,
        }
    }

    /// A kube-rs client pointed at the fake, authenticating with a token
    /// file like a pod's service account.
    pub fn client(&self) -> kube::Client {
        let url = format!("http://{}", self.addr).parse().unwrap();
        let mut config = kube::Config::new(url);
        config.default_namespace = "dash".into();
        config.auth_info.token_file = Some(self.token_file.path().display().to_string());
        kube::Client::try_from(config).expect("client for the fake")
    }

    pub fn answer(&self, answer: Answer) {
        self.lock().answer = answer;
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The stored pod's labels, as the last patch left them.
    pub fn labels(&self) -> Map<String, Value> {
        self.lock().pod["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    /// Sets the stored pod's `dash.io/role` by hand, as `kubectl label` would.
    pub fn set_label(&self, value: &str) {
        self.lock().pod["metadata"]["labels"]["dash.io/role"] = Value::String(value.into());
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock().unwrap()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pod_request(
    State(shared): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, answer) = record(&shared, &method, &uri, &headers, &body);
    match answer {
        Answer::Hang => std::future::pending().await,
        Answer::Status(code, fixture) => json(code, fixture.to_owned()),
        Answer::Recorded if request.authorization != Some(format!("Bearer {TOKEN}")) => {
            json(StatusCode::UNAUTHORIZED, unauthorized())
        }
        Answer::Recorded if ns != "dash" || name != "postgres-0" => {
            json(StatusCode::NOT_FOUND, NOT_FOUND.to_owned())
        }
        Answer::Recorded if method == Method::PATCH => patch(&shared, &request),
        Answer::Recorded => json(StatusCode::OK, shared.lock().unwrap().pod.to_string()),
    }
}

/// A merge patch, as the API server applies one to a pod.
fn patch(shared: &Shared, request: &Recorded) -> Response {
    if request.content_type.as_deref() != Some("application/merge-patch+json") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported patch type").into_response();
    }
    let Ok(patch) = serde_json::from_str::<Value>(&request.body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON").into_response();
    };
    let mut inner = shared.lock().unwrap();
    merge(&mut inner.pod, &patch);
    let version: u64 = inner.pod["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    inner.pod["metadata"]["resourceVersion"] = Value::String((version + 1).to_string());
    json(StatusCode::OK, inner.pod.to_string())
}

/// RFC 7386: objects merge key by key, `null` removes a key, anything else
/// replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().unwrap();
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn unauthorized() -> String {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Unauthorized", "reason": "Unauthorized", "code": 401
    })
    .to_string()
}

/// Records the request and returns it with the answer to give.
fn record(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Recorded, Answer) {
    let header = |h| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let request = Recorded {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: uri.query().map(String::from),
        content_type: header(header::CONTENT_TYPE),
        authorization: header(header::AUTHORIZATION),
        body: String::from_utf8_lossy(body).into_owned(),
    };
    let mut inner = shared.lock().unwrap();
    inner.requests.push(request.clone());
    (request, inner.answer)
}

/// Anything but a pod's path: recorded (so a test sees it) and refused.
async fn unexpected(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&shared, &method, &uri, &headers, &body);
    let message = format!("the fake API server serves no {method} {uri}");
    (StatusCode::NOT_IMPLEMENTED, message).into_response()
}

fn json(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
