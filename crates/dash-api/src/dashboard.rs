//! The web dashboard at `/`: one self-contained page, fed by
//! `GET /api/v1/dashboard` (one snapshot) and `/api/v1/dashboard/stream`
//! (SSE: every change, and the database's reachability the moment it flips).

mod cluster;
mod hub;
pub mod snapshot;

use axum::response::Html;

pub use hub::{database_state, run, Dashboard, EVENTS_SHOWN, SWARMS_SHOWN};

pub async fn page() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
