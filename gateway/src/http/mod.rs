//! HTTP surfaces of the gateway: the admin listener (`/healthz`,
//! `/readyz`, `/metrics`, and the audit viewer), and helpers shared with
//! the approvals UI.

pub mod admin;
pub mod viewer;

/// A random URL-safe token (256 bits): session ids, login states. From
/// the system's generator; should that fail, from the thread's CSPRNG
/// (seeded by the system), never a fixed value.
pub fn random_token() -> String {
    use base64::Engine as _;
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        b = rand::random();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The value of cookie `name` in the request's Cookie headers.
pub fn cookie_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&prefix).map(str::to_string))
}

/// HTML-escapes text for server-rendered pages.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            super::escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
