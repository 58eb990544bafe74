//! Keeps a database pod's `dash.io/role` label current through the
//! Kubernetes API, so that the Services `postgres` (selecting
//! `dash.io/role=primary`) and `postgres-replica` (`dash.io/role=replica`)
//! follow a failover. `dashctl node`, the entrypoint of each database pod,
//! owns one [`RoleLabeler`] for its own pod (`--kube-pod`/`POD_NAME`,
//! `--kube-namespace`/`POD_NAMESPACE`).
//!
//! Built on kube-rs (the maintained Kubernetes client for tokio) with rustls
//! and the ring provider, so no system OpenSSL is needed. Each call is one
//! JSON merge patch of the one label, under a deadline ([`DEFAULT_DEADLINE`])
//! so that a hung API server never blocks a failover. The pod's
//! ServiceAccount needs `get` and `patch` on `pods` in its namespace
//! (`deploy/kubernetes/postgres-rbac.yaml`).
//!
//! **Tested against a recorded fake, untested on a real cluster.** The tests
//! (`tests/role_labeler.rs`) run kube-rs against a fake API server on
//! 127.0.0.1 that answers with Pod and Status documents shaped like a real
//! API server's (`tests/fixtures/`); no Kubernetes API server was available
//! where this was written. The RBAC, the in-cluster configuration and the
//! Services' reaction to the label have not been exercised on a cluster.
//!
//! ```no_run
//! # async fn agent() -> Result<(), dash_kube::KubeError> {
//! use dash_kube::{PodRole, RoleLabeler};
//! let mut labeler = RoleLabeler::in_cluster("dash", "postgres-0").await?;
//! labeler.set_role(PodRole::Primary).await?; // after promotion
//! labeler.clear().await?; // when fenced or stopping
//! # Ok(()) }
//! ```

mod error;
mod labeler;
mod role;

pub use error::{Action, Call, KubeError};
pub use labeler::{RoleLabeler, DEFAULT_DEADLINE, FIELD_MANAGER};
pub use role::{PodRole, UnknownRole, ROLE_LABEL};
