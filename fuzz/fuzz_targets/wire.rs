//! Fuzzes the wire codec and the startup/auth path: framing, every decoder
//! the gateway uses on client or server input, and token pre-parsing; and
//! the audit journal's record frames.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis::pg::{
    self, auth, backend, backend_key, bind, describe, encoding, frontend, parse, query, ready,
    startup,
};

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
    let _ = bind::Bind::decode(data);
    let _ = backend::error_summary(data);
    if let Some((&tag, body)) = data.split_first() {
        let _ = backend::BackendMessage::decode(tag, body);
        let frame = pg::Frame::new(tag, body.to_vec());
        let _ = frontend::FrontendMessage::decode(&frame);
    }
    for enc in ["UTF8", "LATIN1", "SJIS", "BIG5", "GB18030", "JOHAB"] {
        let _ = encoding::TextDecoder::new(enc, "UTF8").decode(data);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = portcullis::identity::oidc::peek(s);
        let _ = startup::parse_options(s);
    }
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_frame)) = pg::split_frame(&mut buf, 1 << 16) {}
    // A strict-mode journal frame (read back from a file after a crash):
    // what reads is written back byte for byte.
    if let Ok(r) = portcullis::audit::record::Stored::from_frame(data) {
        let mut again = Vec::new();
        r.put_frame(&mut again);
        assert_eq!(again, data);
    }
});
