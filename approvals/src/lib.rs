//! Portcullis approvals service: HTTP API and (later) web UI and notifiers.
#![forbid(unsafe_code)]

use axum::routing::get;
use axum::Router;

/// The service's router.
pub fn app() -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" }))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn healthz_answers() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, super::app()).await });
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.ends_with("ok\n"), "{out}");
    }
}
