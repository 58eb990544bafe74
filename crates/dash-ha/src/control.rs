//! Operator requests to the supervisor: `dashctl db failover` and
//! `dashctl db switchover` hand their request to whichever supervisor holds the
//! cluster (a file in `$DASH_HOME/control/`), so only one process ever acts
//! on the cluster, and wait for its answer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    /// Unplanned: fence the primary, promote the most advanced replica.
    Failover,
    /// Planned: stop the primary cleanly, promote a caught-up replica, rejoin the old primary.
    Switchover,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub kind: RequestKind,
    /// A replica to promote; the most advanced one when absent.
    pub target: Option<String>,
    /// Refuse when the candidate is further behind than this, in bytes of WAL.
    pub max_lag_bytes: u64,
}

/// One step the supervisor took, with how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub what: String,
    pub ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: String,
    pub ok: bool,
    pub message: String,
    pub old_primary: Option<String>,
    pub new_primary: Option<String>,
    /// From the moment the primary stopped taking writes to the first write on the new one.
    pub write_gap_ms: Option<f64>,
    pub steps: Vec<Step>,
}

fn dir(home: &Path) -> PathBuf {
    home.join("control")
}

fn request_path(home: &Path) -> PathBuf {
    dir(home).join("request.json")
}

fn outcome_path(home: &Path, id: &str) -> PathBuf {
    dir(home).join(format!("outcome-{id}.json"))
}

fn write_atomic(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value).expect("serializes"))?;
    std::fs::rename(&tmp, path)
}

/// Files a request; fails when another one is still pending.
pub fn submit(home: &Path, req: &Request) -> std::io::Result<()> {
    std::fs::create_dir_all(dir(home))?;
    if request_path(home).exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "another failover or switchover request is pending",
        ));
    }
    write_atomic(&request_path(home), req)
}

/// The pending request, if any (the supervisor's side).
pub fn take(home: &Path) -> Option<Request> {
    let path = request_path(home);
    let text = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    serde_json::from_str(&text).ok()
}

/// Records the answer (the supervisor's side).
pub fn answer(home: &Path, outcome: &Outcome) -> std::io::Result<()> {
    std::fs::create_dir_all(dir(home))?;
    write_atomic(&outcome_path(home, &outcome.id), outcome)
}

/// Waits for the answer to request `id`, at most `limit`.
pub fn wait(home: &Path, id: &str, limit: Duration) -> Option<Outcome> {
    let deadline = Instant::now() + limit;
    let path = outcome_path(home, id);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(o) = serde_json::from_str(&text) {
                let _ = std::fs::remove_file(&path);
                return Some(o);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Withdraw a request nobody picked up.
    let _ = std::fs::remove_file(request_path(home));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_at_a_time_and_answers_are_matched_by_id() {
        let home = tempfile::tempdir().unwrap();
        let req = Request {
            id: "a1".into(),
            kind: RequestKind::Switchover,
            target: None,
            max_lag_bytes: 0,
        };
        submit(home.path(), &req).unwrap();
        assert!(
            submit(home.path(), &req).is_err(),
            "a second pending request is refused"
        );
        assert_eq!(take(home.path()), Some(req));
        assert_eq!(take(home.path()), None);
        let out = Outcome {
            id: "a1".into(),
            ok: true,
            message: "done".into(),
            old_primary: None,
            new_primary: None,
            write_gap_ms: None,
            steps: vec![],
        };
        answer(home.path(), &out).unwrap();
        assert_eq!(wait(home.path(), "a1", Duration::from_secs(1)), Some(out));
    }
}
