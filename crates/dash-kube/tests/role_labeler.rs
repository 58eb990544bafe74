//! RoleLabeler through kube-rs against a recorded fake of the Kubernetes API
//! server (`fake_apiserver`): there is no API server on this machine. What
//! is asserted is what the real API server would receive.

mod fake_apiserver;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use dash_kube::{KubeError, PodRole, RoleLabeler, ROLE_LABEL};
use fake_apiserver::{Answer, FakeApiServer, FORBIDDEN, TOKEN};
use serde_json::Value;

const PATH: &str = "/api/v1/namespaces/dash/pods/postgres-0";

fn labeler(fake: &FakeApiServer) -> RoleLabeler {
    RoleLabeler::with_client(fake.client(), "dash", "postgres-0")
}

fn role_label(fake: &FakeApiServer) -> Option<Value> {
    fake.labels().get(ROLE_LABEL).cloned()
}

/// The query's `key=value` pairs (kube-rs starts the query with `&`, which
/// the API server, like any form decoder, ignores).
fn query_pairs(request: &fake_apiserver::Recorded) -> Vec<&str> {
    let query = request.query.as_deref().unwrap_or_default();
    query.split('&').filter(|pair| !pair.is_empty()).collect()
}

/// Bounds a call the test expects to end by itself, so a regression fails
/// instead of hanging the suite.
async fn within<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the call returned by itself")
}

#[tokio::test]
async fn set_role_sends_one_merge_patch_of_the_label() {
    let fake = FakeApiServer::start().await;
    let mut labeler = labeler(&fake);

    within(labeler.set_role(PodRole::Primary)).await.unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let patch = &requests[0];
    assert_eq!(patch.method, Method::PATCH);
    assert_eq!(patch.path, PATH);
    assert_eq!(query_pairs(patch), ["fieldManager=dash-node"]);
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        patch.body,
        r#"{"metadata":{"labels":{"dash.io/role":"primary"}}}"#
    );
    assert_eq!(
        patch.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // The Services now select it; the StatefulSet's own labels are intact.
    let labels = fake.labels();
    assert_eq!(labels[ROLE_LABEL], "primary");
    assert_eq!(labels["app.kubernetes.io/name"], "postgres");
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "postgres-0");
}

#[tokio::test]
async fn the_same_role_again_sends_nothing() {
    let fake = FakeApiServer::start().await;
    let mut labeler = labeler(&fake);

    for _ in 0..3 {
        within(labeler.set_role(PodRole::Replica)).await.unwrap();
    }

    assert_eq!(fake.requests().len(), 1);
    assert_eq!(role_label(&fake), Some("replica".into()));
}

#[tokio::test]
async fn a_role_change_sends_a_new_patch() {
    let fake = FakeApiServer::start().await;
    let mut labeler = labeler(&fake);

    within(labeler.set_role(PodRole::Replica)).await.unwrap();
    within(labeler.set_role(PodRole::Primary)).await.unwrap();

    let bodies: Vec<String> = fake.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(
        bodies,
        [
            r#"{"metadata":{"labels":{"dash.io/role":"replica"}}}"#,
            r#"{"metadata":{"labels":{"dash.io/role":"primary"}}}"#,
        ]
    );
    assert_eq!(role_label(&fake), Some("primary".into()));
}

#[tokio::test]
async fn clear_removes_the_label_so_neither_service_selects_the_pod() {
    let fake = FakeApiServer::start().await;
    let mut labeler = labeler(&fake);
    within(labeler.set_role(PodRole::Primary)).await.unwrap();

    within(labeler.clear()).await.unwrap();
    within(labeler.clear()).await.unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 2, "a second clear sends nothing");
    assert_eq!(
        requests[1].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        requests[1].body,
        r#"{"metadata":{"labels":{"dash.io/role":null}}}"#
    );
    assert_eq!(role_label(&fake), None);
    assert_eq!(fake.labels()["app.kubernetes.io/name"], "postgres");
}

#[tokio::test]
async fn forbidden_names_the_missing_role_and_is_retried_once_fixed() {
    let fake = FakeApiServer::start().await;
    fake.answer(Answer::Status(StatusCode::FORBIDDEN, FORBIDDEN));
    let mut labeler = labeler(&fake);

    let err = within(labeler.set_role(PodRole::Primary))
        .await
        .unwrap_err();

    assert!(matches!(err, KubeError::Forbidden { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("Role `dash-node`"), "{text}");
    assert!(text.contains("RoleBinding"), "{text}");
    assert!(
        text.contains("cannot patch resource \"pods\""),
        "the API server's own words: {text}"
    );

    // RBAC fixed: the same role is sent again (a failure is not remembered
    // as applied).
    fake.answer(Answer::Recorded);
    within(labeler.set_role(PodRole::Primary)).await.unwrap();
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(role_label(&fake), Some("primary".into()));
}

#[tokio::test]
async fn a_pod_that_does_not_exist_is_not_found() {
    let fake = FakeApiServer::start().await;
    let mut labeler = RoleLabeler::with_client(fake.client(), "dash", "postgres-9");

    let err = within(labeler.set_role(PodRole::Replica))
        .await
        .unwrap_err();

    assert!(matches!(err, KubeError::NotFound { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("pod dash/postgres-9"), "{text}");
    assert!(text.contains("POD_NAME"), "{text}");
}

#[tokio::test]
async fn a_hung_api_server_fails_by_the_deadline_instead_of_blocking() {
    let fake = FakeApiServer::start().await;
    fake.answer(Answer::Hang);
    let deadline = Duration::from_millis(300);
    let mut labeler = labeler(&fake).with_deadline(deadline);

    let err = within(labeler.set_role(PodRole::Primary))
        .await
        .unwrap_err();

    match &err {
        KubeError::Timeout { deadline: d, .. } => assert_eq!(*d, deadline),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert!(
        err.to_string().contains("did not answer within 300ms"),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 1, "the request reached the server");

    // Whether the hung patch was applied is unknown: the next call sends it.
    fake.answer(Answer::Recorded);
    within(labeler.set_role(PodRole::Primary)).await.unwrap();
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn an_unreachable_api_server_is_named_and_retryable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let mut labeler = RoleLabeler::with_client(client, "dash", "postgres-0");

    let err = within(labeler.clear()).await.unwrap_err();

    assert!(matches!(err, KubeError::Unreachable { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("unreachable"), "{err}");
}

#[tokio::test]
async fn current_reads_the_label_and_forget_reasserts_it() {
    let fake = FakeApiServer::start().await;
    let mut labeler = labeler(&fake);
    assert_eq!(within(labeler.current()).await.unwrap(), None);

    within(labeler.set_role(PodRole::Primary)).await.unwrap();
    assert_eq!(
        within(labeler.current()).await.unwrap(),
        Some(PodRole::Primary)
    );
    let get = &fake.requests()[2];
    assert_eq!((&get.method, get.path.as_str()), (&Method::GET, PATH));

    // Someone relabels the pod by hand: the labeler cannot know, sends
    // nothing, until told to forget what it applied.
    fake.set_label("replica");
    within(labeler.set_role(PodRole::Primary)).await.unwrap();
    assert_eq!(role_label(&fake), Some("replica".into()));
    labeler.forget();
    within(labeler.set_role(PodRole::Primary)).await.unwrap();
    assert_eq!(role_label(&fake), Some("primary".into()));

    fake.set_label("leader");
    let err = within(labeler.current()).await.unwrap_err();
    assert!(matches!(err, KubeError::UnknownRole { .. }), "{err:?}");
}

#[tokio::test]
async fn an_https_client_builds_on_rustls_without_openssl() {
    // Building the TLS connector needs a rustls crypto provider (ring here);
    // a second provider enabled elsewhere in the workspace would make this
    // panic, so the test guards the build, not a connection.
    let config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
    let client = kube::Client::try_from(config).expect("an https client");
    let _labeler = RoleLabeler::with_client(client, "dash", "postgres-0");
}
