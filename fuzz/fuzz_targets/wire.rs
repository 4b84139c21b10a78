//! Fuzzes the wire codec and the startup/auth path: framing, every decoder
//! the gateway uses on client or server input, and token pre-parsing.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis::pg::{self, auth, backend_key, describe, parse, query, ready, startup};

fuzz_target!(|data: &[u8]| {
    let _ = startup::StartupPacket::decode(data);
    let _ = auth::AuthRequest::decode(data);
    let _ = auth::decode_password(data);
    let _ = pg::ErrorFields::decode(data);
    let _ = parse::Parse::decode(data);
    let _ = query::decode(data);
    let _ = describe::decode(data);
    let _ = ready::TxStatus::decode(data);
    let _ = backend_key::BackendKey::decode(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = portcullis::identity::oidc::peek(s);
    }
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_frame)) = pg::split_frame(&mut buf, 1 << 16) {}
});
