//! Client text → UTF-8, exactly as the server converts it before lexing,
//! so the gateway sees the same statement boundaries and literals as the
//! server (including encodings whose multibyte characters contain the
//! bytes `\` or `'`: SJIS, BIG5, GBK, GB18030, UHC).

use std::borrow::Cow;

/// How client text is turned into the text the server's lexer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextDecoder {
    /// UTF8 (and SQL_ASCII as a client encoding: the server only checks
    /// the bytes are valid in its own encoding).
    Utf8,
    /// LATIN1: each byte is the code point of the same value.
    Latin1,
    /// The server encoding is SQL_ASCII: no conversion at all; bytes of
    /// 0x80 and above are opaque identifier characters to the lexer.
    Raw,
    /// A table-driven conversion.
    Table(&'static encoding_rs::Encoding),
    /// An encoding the gateway cannot convert: every statement is refused.
    Unsupported(String),
}

/// Text that could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Invalid bytes for the encoding (the server rejects them too).
    #[error("invalid byte sequence for encoding \"{0}\"")]
    Invalid(String),
    /// The gateway cannot convert this encoding.
    #[error("client_encoding \"{0}\" is not supported by the gateway")]
    Unsupported(String),
}

/// PostgreSQL's normalised encoding name: lower case, alphanumerics only.
fn clean(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl TextDecoder {
    /// The decoder for a `client_encoding` value, given the server
    /// encoding.
    pub fn new(client_encoding: &str, server_encoding: &str) -> Self {
        use encoding_rs as e;
        if clean(server_encoding) == "sqlascii" {
            return Self::Raw;
        }
        let table = |enc: &'static e::Encoding| Self::Table(enc);
        match clean(client_encoding).as_str() {
            "utf8" | "unicode" | "sqlascii" => Self::Utf8,
            "latin1" | "iso88591" => Self::Latin1,
            "latin2" | "iso88592" => table(e::ISO_8859_2),
            "latin3" | "iso88593" => table(e::ISO_8859_3),
            "latin4" | "iso88594" => table(e::ISO_8859_4),
            "latin5" | "iso88599" => table(e::WINDOWS_1254),
            "latin6" | "iso885910" => table(e::ISO_8859_10),
            "latin7" | "iso885913" => table(e::ISO_8859_13),
            "latin8" | "iso885914" => table(e::ISO_8859_14),
            "latin9" | "iso885915" => table(e::ISO_8859_15),
            "latin10" | "iso885916" => table(e::ISO_8859_16),
            "iso88595" => table(e::ISO_8859_5),
            "iso88596" => table(e::ISO_8859_6),
            "iso88597" => table(e::ISO_8859_7),
            "iso88598" => table(e::ISO_8859_8),
            "win1250" | "windows1250" => table(e::WINDOWS_1250),
            "win1251" | "windows1251" | "win" => table(e::WINDOWS_1251),
            "win1252" | "windows1252" => table(e::WINDOWS_1252),
            "win1253" | "windows1253" => table(e::WINDOWS_1253),
            "win1254" | "windows1254" => table(e::WINDOWS_1254),
            "win1255" | "windows1255" => table(e::WINDOWS_1255),
            "win1256" | "windows1256" => table(e::WINDOWS_1256),
            "win1257" | "windows1257" => table(e::WINDOWS_1257),
            "win1258" | "windows1258" | "abc" | "tcvn" | "tcvn5712" | "vscii" => {
                table(e::WINDOWS_1258)
            }
            "win866" | "alt" | "windows866" => table(e::IBM866),
            "win874" | "windows874" => table(e::WINDOWS_874),
            "koi8" | "koi8r" => table(e::KOI8_R),
            "koi8u" => table(e::KOI8_U),
            "eucjp" => table(e::EUC_JP),
            "sjis" | "shiftjis" | "mskanji" | "windows932" => table(e::SHIFT_JIS),
            "euckr" | "uhc" | "windows949" => table(e::EUC_KR),
            "euccn" | "gbk" | "windows936" => table(e::GBK),
            "gb18030" => table(e::GB18030),
            "big5" | "windows950" => table(e::BIG5),
            _ => Self::Unsupported(client_encoding.to_string()),
        }
    }

    /// Converts client text to what the server's lexer reads.
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, str>, DecodeError> {
        match self {
            Self::Utf8 => std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|_| DecodeError::Invalid("UTF8".into())),
            Self::Latin1 | Self::Raw => Ok(match std::str::from_utf8(bytes) {
                Ok(s) if bytes.is_ascii() => Cow::Borrowed(s),
                _ => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
            }),
            Self::Table(enc) => {
                if bytes.is_ascii() {
                    // Every supported encoding is ASCII-compatible for
                    // ASCII-only text.
                    if let Ok(s) = std::str::from_utf8(bytes) {
                        return Ok(Cow::Borrowed(s));
                    }
                }
                enc.decode_without_bom_handling_and_without_replacement(bytes)
                    .ok_or_else(|| DecodeError::Invalid(enc.name().to_string()))
            }
            // Every encoding Postgres accepts is ASCII-compatible, so
            // ASCII-only text reads the same in all of them.
            Self::Unsupported(name) => match std::str::from_utf8(bytes) {
                Ok(s) if bytes.is_ascii() => Ok(Cow::Borrowed(s)),
                _ => Err(DecodeError::Unsupported(name.clone())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_like_the_server() {
        let latin9 = TextDecoder::new("LATIN9", "UTF8");
        assert_eq!(latin9.decode(b"select '\xa4'").unwrap(), "select '€'");
        let latin1 = TextDecoder::new("LATIN1", "UTF8");
        assert_eq!(latin1.decode(b"select '\xa4'").unwrap(), "select '¤'");
        let win = TextDecoder::new("WIN1252", "UTF8");
        assert_eq!(win.decode(b"select '\x80'").unwrap(), "select '€'");
        // SJIS 0x95 0x5c is one character (表) whose second byte is `\`.
        let sjis = TextDecoder::new("SJIS", "UTF8");
        assert_eq!(sjis.decode(b"select '\x95\x5c'").unwrap(), "select '表'");
        // BIG5 0xa5 0x5c (功), GBK 0x81 0x5c.
        let big5 = TextDecoder::new("BIG5", "UTF8");
        assert_eq!(big5.decode(b"'\xa5\x5c'").unwrap(), "'功'");
        let gbk = TextDecoder::new("GBK", "UTF8");
        assert_eq!(gbk.decode(b"'\x81\x5c'").unwrap().chars().count(), 3);
        // GB18030 0x81 0x5c is one character; UHC 0xb0 0xa1 is 가.
        let gb18030 = TextDecoder::new("GB18030", "UTF8");
        assert_eq!(gb18030.decode(b"'\x81\x5c'").unwrap().chars().count(), 3);
        let uhc = TextDecoder::new("UHC", "UTF8");
        assert_eq!(uhc.decode(b"'\xb0\xa1'").unwrap(), "'가'");
        for name in [
            "EUC_TW",
            "EUC_JIS_2004",
            "SHIFT_JIS_2004",
            "JOHAB",
            "MULE_INTERNAL",
        ] {
            assert!(
                matches!(TextDecoder::new(name, "UTF8"), TextDecoder::Unsupported(_)),
                "{name}"
            );
        }
        let eucjp = TextDecoder::new("EUC_JP", "UTF8");
        assert_eq!(eucjp.decode(b"'\xc9\xbd'").unwrap(), "'表'");
        assert!(TextDecoder::new("UTF8", "UTF8").decode(b"\xff").is_err());
        assert!(sjis.decode(b"'\x95").is_err());
        let johab = TextDecoder::new("JOHAB", "UTF8");
        assert_eq!(johab.decode(b"select 1").unwrap(), "select 1");
        assert_eq!(
            johab.decode(b"select '\x88\x61'"),
            Err(DecodeError::Unsupported("JOHAB".into()))
        );
        // A SQL_ASCII server does not convert: bytes are opaque.
        let raw = TextDecoder::new("SJIS", "SQL_ASCII");
        assert_eq!(raw.decode(b"'\x95\x5c'").unwrap(), "'\u{95}\\'");
    }
}
