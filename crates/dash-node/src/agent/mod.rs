//! The agent's loop: every tick it looks at its PostgreSQL and at etcd,
//! asks `decide` what to do, does it, keeps the sync set (as leader), and
//! publishes its state to etcd, `/status` and the metrics (`report.rs`);
//! the leader keeps the sync set (`sync_set.rs`).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use dash_dcs::{ClusterView, Dcs, HistoryEntry, LeaseKeeperTask, MemberState, SyncState};

use crate::api::Status;
use crate::backoff::Backoff;
use crate::decide::{decide, Action, Facts, Local};
use crate::local::{LocalPg, Observed};
use crate::metrics::NodeMetrics;
use crate::options::NodeOptions;

mod report;
mod requests;
mod stall;
mod sync_set;
mod words;

use words::{describe, done, own_sync_standbys, quoted_names, role_of, unix_ms};

/// A server that has not answered for this long counts as hung.
const HANG_LIMIT: Duration = Duration::from_secs(2);
/// How long a promotion may take before it is asked for again.
const PROMOTE_PATIENCE: Duration = Duration::from_secs(5);
/// A member state is republished at least this often.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

pub struct Agent {
    pub opts: NodeOptions,
    pub dcs: Dcs,
    pub lease: LeaseKeeperTask,
    pub pg: LocalPg,
    pub status: Arc<RwLock<Status>>,
    pub metrics: Arc<NodeMetrics>,
    backoff: Backoff,
    released_at: Option<Instant>,
    unanswered_since: Option<Instant>,
    sync_seen_at: Option<Instant>,
    grew_at_lsn: Option<u64>,
    published: Option<(Instant, MemberState)>,
    /// Tells the watchdog the server may be writable.
    armed: Arc<crate::watchdog::Armed>,
    /// The last decision written to the history (repeats within a minute are not).
    last_recorded: Option<(Instant, (String, bool, String))>,
    /// When this agent last asked its server to promote.
    promoted_at: Option<Instant>,
    /// The last answer to `pg_is_in_recovery()` from the running server: a
    /// standby that misses one look is still a standby.
    last_in_recovery: Option<bool>,
    /// The hosts of the recorded synchronous standbys (as last read).
    sync_hosts: Vec<String>,
    /// When this leader last checked where etcd's own leader runs.
    etcd_leader_checked: Option<Instant>,
    /// The wanted pod label, when running in Kubernetes.
    label: Option<tokio::sync::watch::Sender<Option<dash_kube::PodRole>>>,
    /// When the archiver's state is read next.
    archive_clock: crate::archive::ArchiveClock,
    /// Whether the running standby is stuck (its position not growing).
    stall: stall::Stall,
}

impl Agent {
    pub fn new(
        opts: NodeOptions,
        dcs: Dcs,
        lease: LeaseKeeperTask,
        pg: LocalPg,
        status: Arc<RwLock<Status>>,
        metrics: Arc<NodeMetrics>,
        armed: Arc<crate::watchdog::Armed>,
    ) -> Agent {
        Agent {
            opts,
            dcs,
            lease,
            pg,
            status,
            metrics,
            backoff: Backoff::default(),
            released_at: None,
            unanswered_since: None,
            sync_seen_at: None,
            grew_at_lsn: None,
            published: None,
            armed,
            last_recorded: None,
            last_in_recovery: None,
            promoted_at: None,
            sync_hosts: Vec::new(),
            etcd_leader_checked: None,
            label: None,
            archive_clock: Default::default(),
            stall: Default::default(),
        }
    }

    /// Keeps the pod's role label current (Kubernetes only).
    pub fn label_pod(&mut self, namespace: String, pod: String) {
        self.label = Some(crate::kube::start(namespace, pod));
    }

    fn me(&self) -> &str {
        &self.opts.name
    }

    fn api_url(&self) -> String {
        format!(
            "http://{}:{}",
            self.opts.advertise,
            self.opts.api_bind.port()
        )
    }

    /// One look, one decision, one step.
    pub async fn tick(&mut self) {
        let now = Instant::now();
        let obs = self.pg.observe().await;
        if obs.running && !obs.answered {
            self.unanswered_since.get_or_insert(now);
        } else {
            self.unanswered_since = None;
        }
        if obs.answered {
            self.backoff.running(now);
        }
        let view = match self.dcs.view().await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(error = %e, "etcd read failed");
                None
            }
        };
        let lease = self.lease.current();
        let following = self.pg.following_addr().and_then(|addr| {
            view.as_ref()
                .and_then(|v| v.members.iter().find(|m| m.pg == addr))
                .map(|m| m.name.clone())
        });
        if !obs.running {
            self.last_in_recovery = None;
        } else if obs.in_recovery.is_some() {
            self.last_in_recovery = obs.in_recovery;
        }
        let in_recovery = match (obs.in_recovery, self.last_in_recovery) {
            (Some(now), _) => Some(now),
            // Only a standby's silence is bridged: a silent primary stays unknown.
            (None, Some(true)) => Some(true),
            (None, _) => None,
        };
        // The watchdog fences a server that may be writable the moment the
        // lease lapses, without waiting for a tick.
        self.armed.set(obs.running && in_recovery != Some(true));
        let local = Local {
            running: obs.running,
            in_recovery,
            hung: self
                .unanswered_since
                .is_some_and(|t| now.duration_since(t) >= HANG_LIMIT),
            has_data: self.pg.has_data(),
            // A stopped former primary that does not hold the key may have
            // WAL the leader never had: it must be rewound before it follows.
            needs_rewind: self.pg.needs_rewind()
                || (!obs.running
                    && self.pg.was_primary()
                    && !view.as_ref().is_some_and(|v| {
                        v.leader.as_ref().is_some_and(|l| l.name == self.opts.name)
                    })),
            following,
            may_start: self.backoff.ready(now),
            released_recently: self
                .released_at
                .is_some_and(|t| now.duration_since(t) < self.opts.ttl * 2),
            promoting: self
                .promoted_at
                .is_some_and(|t| now.duration_since(t) < PROMOTE_PATIENCE),
            stalled_on: self.stall.observe(
                now,
                obs.running && in_recovery == Some(true),
                obs.lsn,
                obs.timeline,
            ),
        };
        let facts = Facts {
            me: &self.opts.name,
            view: view.as_ref(),
            lease,
            now,
            local,
            synchronous: self.opts.synchronous,
        };
        let action = decide(&facts);
        let why = describe(&action);
        self.act(action, view.as_ref(), &obs).await;

        let obs = if why.is_empty() {
            obs
        } else {
            self.pg.observe().await
        };
        if let Some(view) = &view {
            self.keep_sync(view, &obs).await;
        }
        self.publish(&obs, view.as_ref()).await;
        self.report(&obs, view.as_ref(), why);
        if self.archive_clock.due(now) {
            let reading = match obs.answered {
                true => self.pg.archive().await,
                false => None,
            };
            self.metrics.archive.set(reading.as_ref());
            if let Some(repo) = &self.opts.backrest {
                self.metrics.archive.set_verified(repo);
            }
        }
        self.keep_etcd_leader_away(now);
    }

    async fn act(&mut self, action: Action, view: Option<&ClusterView>, obs: &Observed) {
        let Some(label) = action.metric_label() else {
            return;
        };
        let now = Instant::now();
        let detail = describe(&action);
        // A switchover stops cleanly; a failover fences at once.
        let clean = matches!(action, Action::SwitchOver { .. });
        let result: Result<(), String> = match action {
            Action::Fence(_) => done(self.pg.step(|c| c.fence()).await),
            Action::Release(_) => self.fence_and_release(now).await,
            Action::ClaimInitialize => {
                if self.lease.current().is_none_or(|l| !l.valid_at(now)) {
                    return;
                }
                match self.dcs.claim_initialize(self.me()).await {
                    Ok(true) => {
                        self.backoff.attempted(now);
                        done(self.pg.step(|c| c.bootstrap()).await)
                    }
                    Ok(false) => return,
                    Err(e) => Err(e.to_string()),
                }
            }
            Action::Clone(leader) => {
                self.backoff.attempted(now);
                done(self.pg.step(move |c| c.clone_from(&leader)).await)
            }
            Action::StartReplica(leader) => {
                self.backoff.attempted(now);
                done(
                    self.pg
                        .step(move |c| c.start_standby(leader.as_ref()))
                        .await,
                )
            }
            Action::RestartPrimary => {
                self.backoff.attempted(now);
                let sync = own_sync_standbys(view, &self.opts.name);
                done(self.pg.step(move |c| c.start_primary(&sync)).await)
            }
            Action::HaltStop(_) => self.halt_stop(view).await,
            Action::SetAside(_) => done(self.pg.step(|c| c.set_aside()).await),
            Action::Acquire => self.acquire(view, obs).await,
            Action::Reclaim { old_lease } => self.reclaim(old_lease).await,
            Action::Promote => {
                self.promoted_at = Some(now);
                done(self.pg.step(|c| c.promote()).await)
            }
            Action::Follow(leader) => {
                self.backoff.attempted(now);
                self.stall.refollowed();
                done(self.pg.step(move |c| c.refollow(&leader)).await)
            }
            Action::SwitchOver {
                to,
                request_revision,
            }
            | Action::FailOver {
                to,
                request_revision,
            } => match self.hand_over(view, &to, request_revision, clean).await {
                Some(r) => r,
                None => return self.metrics.decision(label, false),
            },
            Action::TakeOver {
                request_revision, ..
            } => self.take_over(view, obs, request_revision).await,
            Action::Refuse {
                request_revision, ..
            } => self
                .dcs
                .clear_request(request_revision)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Action::Wait(_) | Action::Steady => Ok(()),
        };
        self.metrics.decision(label, result.is_ok());
        match &result {
            Ok(()) => tracing::info!(decision = label, "{detail}"),
            Err(e) => tracing::warn!(decision = label, error = %e, "{detail} failed"),
        }
        let key = (label.to_string(), result.is_ok(), detail.clone());
        let repeated = self.last_recorded.as_ref().is_some_and(|(at, last)| {
            *last == key && now.duration_since(*at) < Duration::from_secs(60)
        });
        if repeated {
            return;
        }
        self.last_recorded = Some((now, key));
        let entry = HistoryEntry {
            at_ms: unix_ms(),
            member: self.opts.name.clone(),
            decision: label.to_string(),
            detail: match &result {
                Ok(()) => detail,
                Err(e) => format!("{detail} failed: {e}"),
            },
        };
        let dcs = self.dcs.clone();
        tokio::spawn(async move {
            let _ = dcs.record(&entry).await;
        });
    }

    async fn reclaim(&mut self, old_lease: i64) -> Result<(), String> {
        let Some(lease) = self.lease.current().filter(|l| l.valid_at(Instant::now())) else {
            return Err("no valid lease to move the key to".into());
        };
        let moved = self
            .dcs
            .reclaim(self.me(), old_lease, lease.id)
            .await
            .map_err(|e| e.to_string())?;
        if !moved {
            return Err("the key changed meanwhile".into());
        }
        let _ = self.dcs.revoke(old_lease).await;
        Ok(())
    }

    /// Takes the free key and becomes primary: promote a running standby,
    /// or start a stopped last leader.
    async fn acquire(&mut self, view: Option<&ClusterView>, obs: &Observed) -> Result<(), String> {
        let now = Instant::now();
        let Some(lease) = self.lease.current().filter(|l| l.valid_at(now)) else {
            return Err("no valid lease to hold the key with".into());
        };
        let Some(view) = view else {
            return Err("etcd unreadable".into());
        };
        // A stopped last leader keeps its recorded standbys (and its server
        // waits for them from the start); a promoted standby starts with none.
        let standby_now = obs.running && obs.in_recovery == Some(true);
        let sync = SyncState {
            leader: self.opts.name.clone(),
            standbys: if standby_now {
                Vec::new()
            } else {
                own_sync_standbys(Some(view), &self.opts.name)
            },
        };
        let won = self
            .dcs
            .acquire(self.me(), lease.id, view.sync_revision(), &sync)
            .await
            .map_err(|e| e.to_string())?;
        if !won {
            return Err("another member took the key first".into());
        }
        self.grew_at_lsn = None;
        self.sync_seen_at = None;
        self.armed.set(true);
        // Promoting a standby, or starting one that then promotes.
        self.promoted_at = Some(now);
        match (obs.running, obs.in_recovery) {
            (true, Some(true)) => done(self.pg.step(|c| c.promote()).await),
            (true, _) => Ok(()),
            (false, _) => {
                let standbys = sync.standbys.clone();
                done(self.pg.step(move |c| c.start_primary(&standbys)).await)
            }
        }
    }

    /// Agent shutdown: a leader stops its server cleanly and hands the key
    /// over; everyone ends its lease.
    pub async fn shutdown(&mut self) {
        if let Some(label) = &self.label {
            label.send_replace(None);
        }
        let holds = self.status.read().map(|s| s.holds_key).unwrap_or(false);
        if holds {
            let _ = done(self.pg.step(|c| c.stop_clean()).await);
            let _ = self.dcs.release(self.me()).await;
        } else {
            let _ = done(self.pg.step(|c| c.stop()).await);
        }
        if let Some(l) = self.lease.current() {
            let _ = self.dcs.revoke(l.id).await;
        }
    }
}
