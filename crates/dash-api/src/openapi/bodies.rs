//! Schemas of the answers that handlers build as JSON on the spot (errors,
//! the event page, `/admin`, the health checks). They are never built:
//! they describe those bodies (`Serialize` only lends them serde's
//! `flatten`), and the conformance test checks every real answer against them.

use dash_store::model::Event;
use dash_store::PoolStatus;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// The body of every error: `{"error":{"code":..,"message":..}}`.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `not_found`, `validation_failed`.
    pub code: String,
    /// For people; 5xx messages say nothing internal.
    pub message: String,
}

/// A page of the event log.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Pass it back as `after` for the events that follow; the same cursor
    /// again when there were none.
    pub next_cursor: String,
}

/// The process that answered.
#[derive(Serialize, ToSchema)]
pub struct ThisInstance {
    pub id: Uuid,
    pub host: String,
    pub pid: i32,
}

/// The settings row every API process follows.
#[derive(Serialize, ToSchema)]
pub struct ClusterSetting {
    /// Maintenance mode is on.
    pub enabled: bool,
    #[schema(required = true)]
    pub reason: Option<String>,
    /// The pool size every process uses; null: each keeps its own.
    #[schema(required = true)]
    pub pool_size: Option<i32>,
    pub version: i64,
    #[schema(value_type = String, format = DateTime)]
    pub changed_at: String,
    /// Who: X-Dash-Actor, a short keyed token fingerprint, the process that took the call.
    pub changed_by: String,
}

/// An API process seen in the last hour, with what it applied.
#[derive(Serialize, ToSchema)]
pub struct InstanceView {
    pub id: Uuid,
    pub host: String,
    pub pid: i32,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: String,
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: String,
    pub seen_secs_ago: f64,
    /// Reported within the last 5 s.
    pub live: bool,
    pub maintenance: bool,
    #[schema(required = true)]
    pub reason: Option<String>,
    pub pool_size: i32,
    pub settings_version: i64,
    /// It applies the cluster setting.
    pub applied: bool,
    /// The process that answered.
    pub this: bool,
}

/// The cluster as the database knows it.
#[derive(Serialize, ToSchema)]
pub struct ClusterView {
    /// null when the database could not be read.
    #[schema(required = true)]
    pub cluster: Option<ClusterSetting>,
    /// Every API process seen in the last hour, the live ones first.
    pub instances: Vec<InstanceView>,
    /// Every live instance applies the cluster setting; null when it could not be read.
    #[schema(required = true)]
    pub all_applied: Option<bool>,
    /// The cluster setting could be read and this process has no change the database has not taken.
    pub cluster_wide: bool,
}

/// How far a change got.
#[derive(Serialize, ToSchema)]
pub struct Reach {
    /// The change reached the settings row; false: the database is out of
    /// reach, it applies on this process only until the database answers.
    pub cluster_wide: bool,
    #[schema(required = true)]
    pub cluster: Option<ClusterSetting>,
    /// Present when cluster_wide is false.
    pub note: Option<String>,
}

/// `GET /admin/pool`.
#[derive(Serialize, ToSchema)]
pub struct AdminPool {
    /// This process's pool.
    pub pool: PoolStatus,
    #[schema(required = true)]
    pub primary: Option<String>,
    pub instance: ThisInstance,
    #[serde(flatten)]
    pub view: ClusterView,
}

/// `PUT /admin/pool`.
#[derive(Serialize, ToSchema)]
pub struct AdminPoolChange {
    pub previous_max_size: i64,
    pub pool: PoolStatus,
    pub instance: ThisInstance,
    #[serde(flatten)]
    pub reach: Reach,
}

/// `GET /admin/maintenance`.
#[derive(Serialize, ToSchema)]
pub struct AdminMaintenance {
    /// Maintenance mode on this process.
    pub enabled: bool,
    #[schema(required = true)]
    pub reason: Option<String>,
    pub pool: PoolStatus,
    pub instance: ThisInstance,
    #[serde(flatten)]
    pub view: ClusterView,
}

/// `PUT /admin/maintenance`.
#[derive(Serialize, ToSchema)]
pub struct AdminMaintenanceChange {
    pub enabled: bool,
    #[schema(required = true)]
    pub reason: Option<String>,
    pub instance: ThisInstance,
    #[serde(flatten)]
    pub reach: Reach,
}

/// `/livez`.
#[derive(Serialize, ToSchema)]
pub struct Alive {
    #[schema(pattern = "^alive$")]
    pub status: String,
}

/// The database as `/health` found it.
#[derive(Serialize, ToSchema)]
pub struct DatabaseUp {
    #[schema(pattern = "^up$")]
    pub status: String,
    pub schema_current: bool,
    /// One round trip; null when every connection was busy and the pool's
    /// record of its last contact answered instead.
    #[schema(required = true)]
    pub latency_ms: Option<f64>,
    pub pool_saturated: bool,
    /// The primary's address; left out for anonymous callers with DASH_AUTH_READS.
    pub primary: Option<String>,
}

/// `/health` when the API and its database answer.
#[derive(Serialize, ToSchema)]
pub struct Healthy {
    #[schema(pattern = "^ok$")]
    pub status: String,
    pub database: DatabaseUp,
    pub pool: PoolStatus,
    /// The maintenance reason (null when off); only whether it is on for
    /// anonymous callers with DASH_AUTH_READS.
    #[schema(schema_with = reason_or_flag)]
    pub maintenance: Option<String>,
}

fn reason_or_flag() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let types = SchemaType::from_iter([Type::String, Type::Boolean, Type::Null]);
    ObjectBuilder::new().schema_type(types).build()
}

/// The database as `/health` failed to reach it.
#[derive(Serialize, ToSchema)]
pub struct DatabaseDown {
    #[schema(pattern = "^down$")]
    pub status: String,
    /// Why; left out for anonymous callers with DASH_AUTH_READS.
    pub reason: Option<String>,
}

/// `/health` when the database is out of reach.
#[derive(Serialize, ToSchema)]
pub struct Unhealthy {
    #[schema(pattern = "^unavailable$")]
    pub status: String,
    pub database: DatabaseDown,
    pub pool: PoolStatus,
}

/// `/ready` when connected to a writable primary with the schema migrated.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    #[schema(pattern = "^ready$")]
    pub status: String,
    pub pool_saturated: bool,
    /// Left out for anonymous callers with DASH_AUTH_READS.
    pub primary: Option<String>,
}

/// `/ready` naming what blocks it.
#[derive(Serialize, ToSchema)]
pub struct NotReady {
    #[schema(pattern = "^not_ready$")]
    pub status: String,
    /// `database` or `migrations`.
    #[schema(pattern = "^(database|migrations)$")]
    pub blocking: String,
    pub reason: Option<String>,
}
