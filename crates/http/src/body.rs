//! Request bodies: bounded reads and bounded gzip decompression (no gzip bombs).

use std::io::Read;

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap};
use flate2::read::{GzDecoder, ZlibDecoder};

use crate::problem::Problem;

/// Reads a body of at most `limit` bytes, decompressing gzip/deflate up to `limit` bytes.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, Problem> {
    let raw = to_bytes(body, limit).await.map_err(|_| {
        Problem::too_large(format!("the request body is larger than {limit} bytes"))
    })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(raw.to_vec()),
        "gzip" | "x-gzip" => inflate(GzDecoder::new(&raw[..]), limit),
        "deflate" => inflate(ZlibDecoder::new(&raw[..]), limit),
        other => Err(Problem::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-encoding",
            "Unsupported Media Type",
            format!("Content-Encoding {other:?} is not supported; use gzip or none"),
        )
        .field("Content-Encoding")),
    }
}

fn inflate(reader: impl Read, limit: usize) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::with_capacity(limit.min(64 * 1024));
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| {
            Problem::bad_request("invalid-encoding", "the body is not valid gzip data")
                .field("Content-Encoding")
        })?;
    if out.len() > limit {
        return Err(Problem::too_large(format!(
            "the decompressed request body is larger than {limit} bytes"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gzip_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        h
    }

    #[tokio::test]
    async fn decompresses_gzip_bodies() {
        let body = read_body(&gzip_headers(), Body::from(gz(b"{\"a\":1}")), 1000)
            .await
            .unwrap();
        assert_eq!(body, b"{\"a\":1}");
    }

    #[tokio::test]
    async fn refuses_a_gzip_bomb_past_the_decompressed_limit() {
        let bomb = gz(&vec![b' '; 10 * 1024 * 1024]);
        assert!(bomb.len() < 20_000);
        let err = read_body(&gzip_headers(), Body::from(bomb), 500 * 1024)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[tokio::test]
    async fn rejects_corrupt_gzip_with_a_400() {
        let err = read_body(&gzip_headers(), Body::from(&b"not gzip"[..]), 1000)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400);
    }
}
