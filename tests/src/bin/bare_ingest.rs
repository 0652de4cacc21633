//! The bare baseline of `make measure-ingest`: an axum server that parses a Segment batch
//! with `serde_json`, counts its events and answers 200. What one core can do with no
//! privacy work, storage or queueing, measured beside `tracklayer serve` in the same run.
//!
//! `bare-ingest [--listen 127.0.0.1:0]` prints `listening on http://<addr>`.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

async fn batch(body: Bytes) -> Result<Json<Value>, StatusCode> {
    let parsed: Value = serde_json::from_slice(&body).map_err(|_| StatusCode::BAD_REQUEST)?;
    let accepted = parsed["batch"].as_array().map_or(0, Vec::len);
    Ok(Json(json!({ "accepted": accepted })))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = std::env::args()
        .skip_while(|a| a != "--listen")
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let app =
        Router::new()
            .route("/v1/batch", post(batch))
            .layer(axum::extract::DefaultBodyLimit::max(
                tracklayer_core::ingest::MAX_REQUEST_BYTES,
            ));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // SIGTERM ends it cleanly, as it does `tracklayer serve`: the harness stops both alike.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            term.recv().await;
        })
        .await?;
    Ok(())
}
