//! What can go wrong talking to the Kubernetes API, named so that an
//! operator reading the agent's log knows what to fix.

use std::fmt;
use std::time::Duration;

use crate::role::{PodRole, UnknownRole, ROLE_LABEL};

/// What the labeler was doing when a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Setting `dash.io/role` to a role (PATCH).
    Set(PodRole),
    /// Removing `dash.io/role` (PATCH).
    Clear,
    /// Reading the pod (GET).
    Read,
}

/// One call to the API server: what, and on which pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// What the call does.
    pub action: Action,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ns, pod) = (&self.namespace, &self.pod);
        match self.action {
            Action::Set(role) => write!(f, "set {ROLE_LABEL}={role} on pod {ns}/{pod}"),
            Action::Clear => write!(f, "remove {ROLE_LABEL} from pod {ns}/{pod}"),
            Action::Read => write!(f, "read pod {ns}/{pod}"),
        }
    }
}

/// An error from [`crate::RoleLabeler`].
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// Neither an in-cluster configuration (the pod's service account) nor a
    /// kubeconfig was found.
    #[error(
        "no Kubernetes API configuration: not in a pod with a service account \
         (KUBERNETES_SERVICE_HOST unset) and no kubeconfig"
    )]
    Config(#[source] kube::Error),
    /// The configuration was found but no client could be built from it
    /// (for example an unreadable CA certificate).
    #[error("could not build a Kubernetes client from the configuration")]
    Client(#[source] kube::Error),
    /// 403: the pod's ServiceAccount may not do this.
    #[error(
        "forbidden to {call}: the Role `dash-node` (get and patch on pods) or its RoleBinding \
         to the pod's ServiceAccount `dash-node` is missing in namespace {ns} \
         (deploy/kubernetes/postgres-rbac.yaml); the API server said: {message}",
        ns = call.namespace
    )]
    Forbidden { call: Call, message: String },
    /// 404: no such pod (or namespace).
    #[error(
        "could not {call}: not found (is --kube-pod/POD_NAME this pod's own name and \
         --kube-namespace/POD_NAMESPACE its namespace, from the downward API?)"
    )]
    NotFound { call: Call },
    /// The API server did not answer within the deadline; the call was abandoned.
    #[error("could not {call}: the Kubernetes API did not answer within {deadline:?}")]
    Timeout { call: Call, deadline: Duration },
    /// Any other error status from the API server.
    #[error("could not {call}: the Kubernetes API answered {code} {reason}: {message}")]
    Api {
        call: Call,
        code: u16,
        reason: String,
        message: String,
    },
    /// No connection to the API server (refused, reset, DNS, TLS).
    #[error("could not {call}: the Kubernetes API is unreachable")]
    Unreachable {
        call: Call,
        #[source]
        source: kube::Error,
    },
    /// The request could not be built or the answer could not be read.
    #[error("could not {call}: the request or its answer was malformed")]
    Request {
        call: Call,
        #[source]
        source: kube::Error,
    },
    /// The pod carries a `dash.io/role` value Dash never writes.
    #[error("could not {call}: unexpected label")]
    UnknownRole {
        call: Call,
        #[source]
        source: UnknownRole,
    },
}

impl KubeError {
    /// Classifies an error from kube-rs for `call`.
    pub(crate) fn from_kube(call: Call, err: kube::Error) -> KubeError {
        match err {
            kube::Error::Api(status) => match status.code {
                403 => KubeError::Forbidden {
                    call,
                    message: status.message,
                },
                404 => KubeError::NotFound { call },
                code => KubeError::Api {
                    call,
                    code,
                    reason: status.reason,
                    message: status.message,
                },
            },
            source @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => {
                KubeError::Unreachable { call, source }
            }
            source => KubeError::Request { call, source },
        }
    }

    /// True when the same call may succeed later with nobody fixing
    /// anything (a slow or restarting API server); false when an operator
    /// must act first (RBAC, a wrong pod name, a broken configuration).
    pub fn is_retryable(&self) -> bool {
        match self {
            KubeError::Timeout { .. } | KubeError::Unreachable { .. } => true,
            KubeError::Api { code, .. } => *code == 429 || *code >= 500,
            KubeError::Config(_)
            | KubeError::Client(_)
            | KubeError::Forbidden { .. }
            | KubeError::NotFound { .. }
            | KubeError::Request { .. }
            | KubeError::UnknownRole { .. } => false,
        }
    }

    /// A fixed, low-cardinality name for metrics labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            KubeError::Config(_) => "config",
            KubeError::Client(_) => "client",
            KubeError::Forbidden { .. } => "forbidden",
            KubeError::NotFound { .. } => "not_found",
            KubeError::Timeout { .. } => "timeout",
            KubeError::Api { .. } => "api",
            KubeError::Unreachable { .. } => "unreachable",
            KubeError::Request { .. } => "request",
            KubeError::UnknownRole { .. } => "unknown_role",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn call() -> Call {
        Call {
            action: Action::Set(PodRole::Primary),
            namespace: "dash".into(),
            pod: "postgres-0".into(),
        }
    }

    fn io_error() -> kube::Error {
        kube::Error::Service(Box::new(std::io::Error::other("connection refused")))
    }

    fn api(code: u16, reason: &str) -> KubeError {
        let status = Status::failure("the message", reason).with_code(code);
        KubeError::from_kube(call(), kube::Error::Api(status.boxed()))
    }

    #[test]
    fn calls_name_the_action_and_the_pod() {
        let mut c = call();
        assert_eq!(
            c.to_string(),
            "set dash.io/role=primary on pod dash/postgres-0"
        );
        c.action = Action::Clear;
        assert_eq!(
            c.to_string(),
            "remove dash.io/role from pod dash/postgres-0"
        );
        c.action = Action::Read;
        assert_eq!(c.to_string(), "read pod dash/postgres-0");
    }

    #[test]
    fn statuses_are_classified_by_code() {
        let forbidden = api(403, "Forbidden");
        assert!(matches!(forbidden, KubeError::Forbidden { .. }));
        let text = forbidden.to_string();
        assert!(text.contains("Role `dash-node`"), "{text}");
        assert!(text.contains("RoleBinding"), "{text}");
        assert!(text.contains("the message"), "{text}");
        assert!(matches!(api(404, "NotFound"), KubeError::NotFound { .. }));
        assert!(matches!(
            api(500, "InternalError"),
            KubeError::Api { code: 500, .. }
        ));
    }

    #[test]
    fn transport_errors_are_unreachable_and_others_are_request_errors() {
        let unreachable = KubeError::from_kube(call(), io_error());
        assert!(matches!(unreachable, KubeError::Unreachable { .. }));
        let bad_json = serde_json::from_str::<u8>("x").unwrap_err();
        let request = KubeError::from_kube(call(), kube::Error::SerdeError(bad_json));
        assert!(matches!(request, KubeError::Request { .. }));
    }

    #[test]
    fn each_variant_says_whether_a_retry_can_help() {
        let cases: Vec<(KubeError, bool, &str)> = vec![
            (KubeError::Config(io_error()), false, "config"),
            (KubeError::Client(io_error()), false, "client"),
            (api(403, "Forbidden"), false, "forbidden"),
            (api(404, "NotFound"), false, "not_found"),
            (
                KubeError::Timeout {
                    call: call(),
                    deadline: Duration::from_secs(2),
                },
                true,
                "timeout",
            ),
            (api(429, "TooManyRequests"), true, "api"),
            (api(503, "ServiceUnavailable"), true, "api"),
            (api(422, "Invalid"), false, "api"),
            (
                KubeError::from_kube(call(), io_error()),
                true,
                "unreachable",
            ),
            (
                KubeError::Request {
                    call: call(),
                    source: kube::Error::LinesCodecMaxLineLengthExceeded,
                },
                false,
                "request",
            ),
            (
                KubeError::UnknownRole {
                    call: call(),
                    source: UnknownRole("leader".into()),
                },
                false,
                "unknown_role",
            ),
        ];
        for (err, retryable, label) in cases {
            assert_eq!(err.is_retryable(), retryable, "{err}");
            assert_eq!(err.metric_label(), label, "{err}");
        }
    }
}
