//! A local HTTP receiver for webhooks and API stand-ins: records every
//! request (head, body) and answers with a fixed body.

/// What a receiver got: (request head, body) per request.
pub type Deliveries = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A local HTTP receiver that fails the first `fail` requests with 500 and
/// answers the rest 200 with `body` (JSON when not empty).
pub fn receiver_with(fail: usize, answer: &'static str) -> (u16, Deliveries) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut c) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let Ok(k) = c.read(&mut chunk) else {
                    break (String::new(), String::new());
                };
                if k == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..k]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = text.find("\r\n\r\n") {
                    let len = text[..i]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + len {
                        break (
                            text[..i].to_string(),
                            String::from_utf8_lossy(&buf[i + 4..i + 4 + len]).to_string(),
                        );
                    }
                }
            };
            let status = if n < fail {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = c.write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                )
                .as_bytes(),
            );
            if let Ok(mut g) = seen.lock() {
                g.push((head, body));
            }
        }
    });
    (port, got)
}
