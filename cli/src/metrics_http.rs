//! `--metrics ADDR`: a minimal HTTP/1.1 responder for Prometheus scrapes. `GET /metrics`
//! gets the text a node renders (OpenMetrics, from `prometheus-client`); anything else a
//! 404 or 405. One connection at a time, each bounded in bytes and time, so a slow or
//! hostile client can hold at most one slot and never the node's memory.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{AsyncReadExt as _, AsyncWriteExt as _};
use wire::runtime::{self, TcpListener, TcpStream};

/// Longest request head read; a scrape's is a few hundred bytes.
pub const REQUEST_BYTES_MAX: usize = 8 * 1024;
/// Longest a connection may take to send its request and read the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds the metrics address (before the node opens anything, as its listen address is).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves scrapes on `listener` for the process's lifetime; `render` is called per scrape.
pub fn serve(listener: TcpListener, render: impl Fn() -> String + Send + Sync + 'static) {
    runtime::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "metrics: accept failed");
                    runtime::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if runtime::timeout(REQUEST_TIMEOUT, answer(stream, &render))
                .await
                .is_none()
            {
                tracing::debug!("metrics: a request timed out");
            }
        }
    });
}

async fn answer(mut stream: TcpStream, render: &impl Fn() -> String) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buf[..read]),
        }
        if head.len() > REQUEST_BYTES_MAX {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
        }
    }
    let line = head.split(|&byte| byte == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&byte| byte == b' ');
    let (method, target) = (words.next(), words.next().unwrap_or_default());
    let path = target
        .split(|&byte| byte == b'?')
        .next()
        .unwrap_or_default();
    match (method, path) {
        (Some(b"GET"), b"/metrics") => {
            respond(&mut stream, "200 OK", CONTENT_TYPE, &render()).await
        }
        (Some(b"GET"), _) => {
            respond(&mut stream, "404 Not Found", "text/plain", "try /metrics\n").await
        }
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n",
            )
            .await
        }
    }
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.flush().await;
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    fn get(addr: std::net::SocketAddr, request: &str) -> String {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = Vec::new();
        // A reset after an early answer (an oversized request) keeps what was read.
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[test]
    fn metrics_are_served_and_other_paths_are_not() {
        let listener = wire::runtime::block_on(super::bind("127.0.0.1:0".parse().expect("addr")))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        super::serve(listener, || "up 1\n# EOF\n".to_string());
        let ok = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Length: 11\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nup 1\n# EOF\n"), "{ok}");
        let missing = get(addr, "GET / HTTP/1.1\r\n\r\n");
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(addr, "POST /metrics HTTP/1.1\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
        let refused = get(addr, &huge);
        assert!(
            refused.is_empty() || refused.starts_with("HTTP/1.1 431"),
            "{refused}"
        );
        let after = get(addr, "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(
            after.starts_with("HTTP/1.1 200 OK\r\n"),
            "still serving: {after}"
        );
    }
}
