//! The request body reader: gzip/deflate decompression bounded by the same limit as the
//! compressed body and by a ratio to its compressed size (no gzip bomb gets past it).
//!
//! Input: arbitrary bytes, read as a gzip body, a deflate body, and as the plain text of a
//! body that is compressed here first.

use std::io::Write;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use tracklayer_http::body::{read_body, DEFAULT_INFLATE_RATIO};

/// Small, so that the fuzzer reaches it.
const LIMIT: usize = 4096;

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

fn read(encoding: &'static str, body: Vec<u8>) -> Result<Vec<u8>, u16> {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    runtime()
        .block_on(read_body(&headers, Body::from(body), LIMIT))
        .map_err(|p| p.status())
}

pub fn check(data: &[u8]) {
    // Any bytes: at most LIMIT bytes come out, or a 400 (not gzip) / 413 (too large).
    for encoding in ["gzip", "deflate"] {
        match read(encoding, data.to_vec()) {
            Ok(out) => assert!(out.len() <= LIMIT, "{encoding}: {} bytes", out.len()),
            Err(status) => assert!(matches!(status, 400 | 413), "{encoding}: {status}"),
        }
    }
    // A well-formed body: exactly what was compressed, or 413 past the limit or the ratio.
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(data).expect("in memory");
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::fast());
    zlib.write_all(data).expect("in memory");
    for (encoding, compressed) in [
        ("gzip", gz.finish().expect("in memory")),
        ("deflate", zlib.finish().expect("in memory")),
    ] {
        let fits = data.len() <= LIMIT
            && compressed.len() <= LIMIT
            && data.len() <= compressed.len() * DEFAULT_INFLATE_RATIO;
        match read(encoding, compressed) {
            Ok(out) => assert!(fits && out == data, "{encoding}: {} bytes", out.len()),
            Err(status) => assert!(!fits && status == 413, "{encoding}: {status}"),
        }
    }
}
