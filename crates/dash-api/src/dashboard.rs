//! The web dashboard at `/`: one self-contained page that reads the API.

use axum::response::Html;

pub async fn page() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
