//! [`RoleLabeler`]: one pod's `dash.io/role` label, patched through the
//! Kubernetes API under a deadline, and only when it changes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Config};
use tracing::instrument;

use crate::error::{Action, Call, KubeError};
use crate::role::{label_patch, PodRole, ROLE_LABEL};

/// How long one call to the API server may take by default. A failover must
/// never wait on a hung API server: past this, the call is abandoned and
/// [`KubeError::Timeout`] returned; the agent goes on and tries again later.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);

/// The field manager Dash's patches are recorded under (`managedFields`).
pub const FIELD_MANAGER: &str = "dash-node";

/// Keeps one pod's `dash.io/role` label equal to what its agent says it is.
///
/// The agent calls [`RoleLabeler::set_role`] after each change of role and
/// [`RoleLabeler::clear`] when it fences or stops. A call whose label was
/// already applied successfully sends nothing, so calling on every loop of
/// the agent is cheap; after a failed call the labeler no longer knows what
/// the pod carries, and the next call sends the patch again.
pub struct RoleLabeler {
    pods: Api<Pod>,
    namespace: String,
    pod: String,
    deadline: Duration,
    /// What the API server last accepted: `Some(Some(role))` a role,
    /// `Some(None)` the label removed, `None` unknown (nothing sent yet, or
    /// the last call failed).
    applied: Option<Option<PodRole>>,
}

impl std::fmt::Debug for RoleLabeler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleLabeler")
            .field("namespace", &self.namespace)
            .field("pod", &self.pod)
            .field("deadline", &self.deadline)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

impl RoleLabeler {
    /// A labeler for pod `pod` in `namespace`, with the pod's service
    /// account (in a pod), or the local kubeconfig (outside one, e.g. a
    /// developer's machine): kube-rs's `Config::infer`. The connect timeout
    /// is set to the call deadline.
    pub async fn in_cluster(namespace: &str, pod: &str) -> Result<RoleLabeler, KubeError> {
        let mut config = Config::infer()
            .await
            .map_err(|e| KubeError::Config(kube::Error::InferConfig(e)))?;
        config.connect_timeout = Some(DEFAULT_DEADLINE);
        let client = Client::try_from(config).map_err(KubeError::Client)?;
        Ok(RoleLabeler::with_client(client, namespace, pod))
    }

    /// A labeler on a client built by the caller (tests point one at a fake
    /// API server).
    pub fn with_client(client: Client, namespace: &str, pod: &str) -> RoleLabeler {
        RoleLabeler {
            pods: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            deadline: DEFAULT_DEADLINE,
            applied: None,
        }
    }

    /// The same labeler with another per-call deadline (default
    /// [`DEFAULT_DEADLINE`]).
    pub fn with_deadline(mut self, deadline: Duration) -> RoleLabeler {
        self.deadline = deadline;
        self
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The pod's name.
    pub fn pod(&self) -> &str {
        &self.pod
    }

    /// Sets `dash.io/role` to `role` with a JSON merge patch of that one
    /// label. Sends nothing when `role` is what the last successful call
    /// applied.
    #[instrument(skip_all, fields(namespace = %self.namespace, pod = %self.pod, role = %role), err)]
    pub async fn set_role(&mut self, role: PodRole) -> Result<(), KubeError> {
        self.apply(Some(role)).await
    }

    /// Removes `dash.io/role`, so that neither Service selects the pod (a
    /// fenced or stopping node). Sends nothing when the last successful call
    /// already removed it.
    #[instrument(skip_all, fields(namespace = %self.namespace, pod = %self.pod), err)]
    pub async fn clear(&mut self) -> Result<(), KubeError> {
        self.apply(None).await
    }

    /// Forgets what was applied, so that the next call sends its patch
    /// whatever it is: for an agent that re-asserts its label now and then
    /// (someone may have edited it by hand).
    pub fn forget(&mut self) {
        self.applied = None;
    }

    /// Reads the pod's current `dash.io/role` (GET): `None` when it has none.
    #[instrument(skip_all, fields(namespace = %self.namespace, pod = %self.pod), err)]
    pub async fn current(&self) -> Result<Option<PodRole>, KubeError> {
        let call = self.call(Action::Read);
        let pod = self.bounded(call.clone(), self.pods.get(&self.pod)).await?;
        let labels = pod.metadata.labels.unwrap_or_default();
        match labels.get(ROLE_LABEL) {
            None => Ok(None),
            Some(value) => value
                .parse()
                .map(Some)
                .map_err(|source| KubeError::UnknownRole { call, source }),
        }
    }

    async fn apply(&mut self, role: Option<PodRole>) -> Result<(), KubeError> {
        if self.applied == Some(role) {
            return Ok(());
        }
        let call = self.call(role.map_or(Action::Clear, Action::Set));
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let patch = Patch::Merge(label_patch(role));
        // Unknown until the API server says otherwise: a call that failed or
        // timed out may or may not have been applied.
        self.applied = None;
        self.bounded(call, self.pods.patch(&self.pod, &params, &patch))
            .await?;
        self.applied = Some(role);
        tracing::info!(
            label = ROLE_LABEL,
            value = role.map_or("(removed)", PodRole::as_str),
            "pod label applied"
        );
        Ok(())
    }

    /// Runs one API call under the deadline; dropping the future on timeout
    /// abandons the request.
    async fn bounded<T>(
        &self,
        call: Call,
        request: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, KubeError> {
        match tokio::time::timeout(self.deadline, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(KubeError::from_kube(call, err)),
            Err(_elapsed) => Err(KubeError::Timeout {
                call,
                deadline: self.deadline,
            }),
        }
    }

    fn call(&self, action: Action) -> Call {
        Call {
            action,
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
        }
    }
}
