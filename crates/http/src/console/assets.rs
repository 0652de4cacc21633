//! The console's static files, compiled into the binary (`include_bytes!`) and served under
//! content-hashed names (`/assets/console.3f2a9c1b7d4e.css`) with a year's immutable caching:
//! a new build changes the name, so no browser ever keeps a stale script.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One file: its hashed name, bytes and type.
#[derive(Debug)]
struct Asset {
    name: String,
    etag: String,
    bytes: &'static [u8],
    content_type: &'static str,
}

impl Asset {
    fn new(stem: &str, ext: &str, bytes: &'static [u8], content_type: &'static str) -> Self {
        let digest = hex::encode(Sha256::digest(bytes));
        Self {
            name: format!("{stem}.{}.{ext}", &digest[..12]),
            etag: format!("\"{}\"", &digest[..32]),
            bytes,
            content_type,
        }
    }
}

/// The paths the pages link to.
#[derive(Debug)]
pub struct Assets {
    pub css: String,
    pub htmx: String,
    pub js: String,
    files: [Asset; 3],
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| {
    let files = [
        Asset::new(
            "console",
            "css",
            include_bytes!("../../static/console/console.css"),
            "text/css; charset=utf-8",
        ),
        Asset::new(
            "htmx-2.0.11",
            "min.js",
            include_bytes!("../../static/console/htmx-2.0.11.min.js"),
            "text/javascript; charset=utf-8",
        ),
        Asset::new(
            "console",
            "js",
            include_bytes!("../../static/console/console.js"),
            "text/javascript; charset=utf-8",
        ),
    ];
    let path = |i: usize| format!("{PREFIX}{}", files[i].name);
    Assets {
        css: path(0),
        htmx: path(1),
        js: path(2),
        files,
    }
});

/// Where the files are served.
pub const PREFIX: &str = "/assets/";

/// The console's assets.
pub fn assets() -> &'static Assets {
    &ASSETS
}

/// `GET /assets/{name}`: the file, cached for a year; `304` to a matching `If-None-Match`.
pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.files.iter().find(|a| a.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cache = [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
        (
            header::ETAG,
            HeaderValue::from_str(&asset.etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    if matches {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.bytes,
    )
        .into_response()
}
