//! The `dash.io/role` label: its values and the JSON merge patch that sets
//! or removes it. Pure; the labeler sends what this builds.

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};

/// The pod label the Services select on: `postgres` on
/// `dash.io/role=primary`, `postgres-replica` on `dash.io/role=replica`.
pub const ROLE_LABEL: &str = "dash.io/role";

/// What a database pod is, as the Services see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PodRole {
    /// The writable primary (holds the leader key): selected by Service `postgres`.
    Primary,
    /// A streaming replica: selected by Service `postgres-replica`.
    Replica,
}

impl PodRole {
    /// The label value: `primary` or `replica`.
    pub fn as_str(self) -> &'static str {
        match self {
            PodRole::Primary => "primary",
            PodRole::Replica => "replica",
        }
    }
}

impl fmt::Display for PodRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label value that is neither `primary` nor `replica`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ROLE_LABEL}={0:?} is neither \"primary\" nor \"replica\"")]
pub struct UnknownRole(pub String);

impl FromStr for PodRole {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "primary" => Ok(PodRole::Primary),
            "replica" => Ok(PodRole::Replica),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// The JSON merge patch (RFC 7386) that sets the label to `role`, or removes
/// it when `role` is `None` (a `null` value deletes a key). Only this one
/// label is touched: the StatefulSet's own labels stay as they are.
pub(crate) fn label_patch(role: Option<PodRole>) -> Value {
    json!({ "metadata": { "labels": { ROLE_LABEL: role.map(PodRole::as_str) } } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_the_ones_the_services_select_on() {
        assert_eq!(PodRole::Primary.as_str(), "primary");
        assert_eq!(PodRole::Replica.to_string(), "replica");
    }

    #[test]
    fn label_values_parse_back_and_anything_else_is_refused() {
        for role in [PodRole::Primary, PodRole::Replica] {
            assert_eq!(role.as_str().parse::<PodRole>(), Ok(role));
        }
        let err = "Primary".parse::<PodRole>().unwrap_err();
        assert_eq!(err, UnknownRole("Primary".into()));
        assert!(err.to_string().contains("dash.io/role=\"Primary\""));
    }

    #[test]
    fn the_patch_sets_only_the_role_label() {
        assert_eq!(
            label_patch(Some(PodRole::Primary)).to_string(),
            r#"{"metadata":{"labels":{"dash.io/role":"primary"}}}"#
        );
        assert_eq!(
            label_patch(Some(PodRole::Replica)).to_string(),
            r#"{"metadata":{"labels":{"dash.io/role":"replica"}}}"#
        );
    }

    #[test]
    fn the_clearing_patch_sends_null_which_removes_the_key() {
        assert_eq!(
            label_patch(None).to_string(),
            r#"{"metadata":{"labels":{"dash.io/role":null}}}"#
        );
    }
}
