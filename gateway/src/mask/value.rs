//! What each masking method makes of one value. Only string columns
//! (`text`, `varchar`, `char(n)`, `name`) are rewritten in place; a masked
//! column of any other type becomes NULL whatever the method (a value
//! that would not parse as its type would break the client's decoder).
//! The text and binary forms of these types are the same bytes.

use ring::hmac;

use super::Method;

/// Type OIDs whose values are plain character strings in both formats.
const STRING_TYPES: [u32; 4] = [25, 1043, 1042, 19];

/// What `redact` puts in place of a string.
pub const REDACTED: &str = "[redacted]";

/// Whether values of type `oid` are rewritten (others become NULL).
pub fn is_string(oid: u32) -> bool {
    STRING_TYPES.contains(&oid)
}

/// The masked form of `value` (`None`: NULL). `utf8`: the client's
/// encoding is UTF-8 (characters can be counted); `key`: the hash key.
pub fn mask(
    method: Method,
    string: bool,
    value: &[u8],
    utf8: bool,
    key: &hmac::Key,
) -> Option<Vec<u8>> {
    if !string {
        return None;
    }
    match method {
        Method::Null => None,
        Method::Redact => Some(REDACTED.as_bytes().to_vec()),
        Method::Hash => {
            let tag = hmac::sign(key, value);
            Some(hex::encode(&tag.as_ref()[..16]).into_bytes())
        }
        Method::Partial => Some(match std::str::from_utf8(value) {
            Ok(s) if utf8 => partial(s).into_bytes(),
            _ => REDACTED.as_bytes().to_vec(),
        }),
    }
}

/// `partial`: an e-mail address keeps the first character of its local
/// part and its domain (`a****@example.com`); a string of 8 or more
/// characters keeps its last 4 (`************1111`); a shorter one its
/// first (`B**`); one character becomes `*`.
pub fn partial(s: &str) -> String {
    let stars = |n: usize| "*".repeat(n);
    if let Some(at) = s.rfind('@') {
        let local = &s[..at];
        let mut chars = local.chars();
        if let Some(first) = chars.next() {
            return format!("{first}{}{}", stars(chars.count()), &s[at..]);
        }
    }
    let n = s.chars().count();
    if n >= 8 {
        let keep: String = s.chars().skip(n - 4).collect();
        format!("{}{keep}", stars(n - 4))
    } else if n >= 2 {
        let first = s.chars().next().unwrap_or('*');
        format!("{first}{}", stars(n - 1))
    } else {
        stars(n.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, b"k")
    }

    #[test]
    fn methods_on_strings() {
        let k = key();
        let v = b"alice@example.com";
        assert_eq!(mask(Method::Null, true, v, true, &k), None);
        assert_eq!(
            mask(Method::Redact, true, v, true, &k).unwrap(),
            b"[redacted]"
        );
        let h = mask(Method::Hash, true, v, true, &k).unwrap();
        assert_eq!(h.len(), 32);
        assert_eq!(Some(h.clone()), mask(Method::Hash, true, v, true, &k));
        assert_ne!(
            Some(h),
            mask(Method::Hash, true, b"bob@example.com", true, &k)
        );
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"other");
        assert_ne!(
            mask(Method::Hash, true, v, true, &k),
            mask(Method::Hash, true, v, true, &other),
            "the hash is keyed"
        );
        assert_eq!(
            mask(Method::Partial, true, v, true, &k).unwrap(),
            b"a****@example.com"
        );
        // Not UTF-8 (or another client encoding): redacted.
        assert_eq!(
            mask(Method::Partial, true, b"\xe9t\xe9", true, &k).unwrap(),
            b"[redacted]"
        );
        assert_eq!(
            mask(Method::Partial, true, b"abc", false, &k).unwrap(),
            b"[redacted]"
        );
    }

    #[test]
    fn other_types_become_null() {
        for m in [Method::Redact, Method::Hash, Method::Partial, Method::Null] {
            assert_eq!(mask(m, false, b"42", true, &key()), None);
        }
        assert!(is_string(25) && is_string(1043) && !is_string(23));
    }

    #[test]
    fn partial_shapes() {
        assert_eq!(partial("4111111111111111"), "************1111");
        assert_eq!(partial("Bob"), "B**");
        assert_eq!(partial("x"), "*");
        assert_eq!(partial(""), "*");
        assert_eq!(partial("@example.com"), "********.com");
        assert_eq!(partial("élodie@exemple.fr"), "é*****@exemple.fr");
    }
}
