//! ParameterStatus (`S` from the server): a run-time parameter's value.

use bytes::BytesMut;

use super::{put_cstr, CodecError, Frame, Reader};

/// Encodes a ParameterStatus frame.
pub fn to_frame(name: &str, value: &str) -> Frame {
    let mut b = BytesMut::new();
    put_cstr(&mut b, name);
    put_cstr(&mut b, value);
    Frame::new(b'S', b)
}

/// Decodes a ParameterStatus body into (name, value).
pub fn decode(body: &[u8]) -> Result<(&str, &str), CodecError> {
    let mut r = Reader::new("ParameterStatus", body);
    let name = r.cstr()?;
    let value = r.cstr()?;
    r.finish()?;
    Ok((name, value))
}

/// If `body` reports `standard_conforming_strings`, whether it is off.
pub fn standard_strings_off(body: &[u8]) -> Option<bool> {
    match decode(body) {
        Ok(("standard_conforming_strings", value)) => Some(value == "off"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let f = super::to_frame("server_version", "15.4");
        assert_eq!(super::decode(&f.body).unwrap(), ("server_version", "15.4"));
        assert!(super::decode(b"x").is_err());
        let f = super::to_frame("standard_conforming_strings", "off");
        assert_eq!(super::standard_strings_off(&f.body), Some(true));
        assert_eq!(
            super::standard_strings_off(&super::to_frame("TimeZone", "UTC").body),
            None
        );
    }
}
