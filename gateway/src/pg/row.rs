//! RowDescription (`T`) and DataRow (`D`) from the server: what the mask
//! stage reads of a result (each column's origin, type and format) and the
//! rows it rewrites.

use bytes::{BufMut, BytesMut};

use super::{put_cbytes, CodecError, Frame, Reader};

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Column name as the server labels it.
    pub name: Vec<u8>,
    /// OID of the table the column comes straight from (0: computed).
    pub table_oid: u32,
    /// Its attribute number in that table (0: computed).
    pub column: i16,
    /// Type OID (a domain's base type).
    pub type_oid: u32,
    /// Type length.
    pub type_len: i16,
    /// Type modifier.
    pub type_mod: i32,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// Decodes a RowDescription body.
pub fn decode_description(body: &[u8]) -> Result<Vec<Field>, CodecError> {
    let mut r = Reader::new("RowDescription", body);
    let n = r.i16()?;
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n.max(0) {
        let name = r.cbytes()?.to_vec();
        out.push(Field {
            name,
            table_oid: r.i32()? as u32,
            column: r.i16()?,
            type_oid: r.i32()? as u32,
            type_len: r.i16()?,
            type_mod: r.i32()?,
            format: r.i16()?,
        });
    }
    r.finish()?;
    Ok(out)
}

/// Encodes a RowDescription.
pub fn description_frame(fields: &[Field]) -> Frame {
    let mut b = BytesMut::new();
    b.put_i16(fields.len() as i16);
    for f in fields {
        put_cbytes(&mut b, &f.name);
        b.put_u32(f.table_oid);
        b.put_i16(f.column);
        b.put_u32(f.type_oid);
        b.put_i16(f.type_len);
        b.put_i32(f.type_mod);
        b.put_i16(f.format);
    }
    Frame::new(b'T', b)
}

/// Decodes a DataRow body: each value (`None`: NULL).
pub fn decode_row(body: &[u8]) -> Result<Vec<Option<&[u8]>>, CodecError> {
    let mut r = Reader::new("DataRow", body);
    let n = r.i16()?;
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n.max(0) {
        let len = r.i32()?;
        out.push(if len < 0 {
            None
        } else {
            Some(r.bytes(len as usize)?)
        });
    }
    r.finish()?;
    Ok(out)
}

/// Encodes a DataRow.
pub fn row_frame<V: AsRef<[u8]>>(values: &[Option<V>]) -> Frame {
    let size: usize = values
        .iter()
        .map(|v| 4 + v.as_ref().map_or(0, |v| v.as_ref().len()))
        .sum();
    let mut b = BytesMut::with_capacity(2 + size);
    b.put_i16(values.len() as i16);
    for v in values {
        match v {
            None => b.put_i32(-1),
            Some(v) => {
                b.put_i32(v.as_ref().len() as i32);
                b.put_slice(v.as_ref());
            }
        }
    }
    Frame::new(b'D', b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_round_trip() {
        let fields = vec![
            Field {
                name: b"email".to_vec(),
                table_oid: 16384,
                column: 2,
                type_oid: 25,
                type_len: -1,
                type_mod: -1,
                format: 0,
            },
            Field {
                name: b"count".to_vec(),
                table_oid: 0,
                column: 0,
                type_oid: 20,
                type_len: 8,
                type_mod: -1,
                format: 1,
            },
        ];
        let f = description_frame(&fields);
        assert_eq!(f.tag, b'T');
        assert_eq!(decode_description(&f.body).unwrap(), fields);
        assert!(decode_description(&f.body[..f.body.len() - 1]).is_err());
        assert!(decode_description(b"\x00\x01email").is_err());
    }

    #[test]
    fn row_round_trip() {
        let values: Vec<Option<&[u8]>> = vec![Some(b"a@x"), None, Some(b"")];
        let f = row_frame(&values);
        assert_eq!(f.tag, b'D');
        assert_eq!(decode_row(&f.body).unwrap(), values);
        // A length past the end, and trailing bytes, are malformed.
        assert!(decode_row(b"\x00\x01\x00\x00\x00\x09abc").is_err());
        assert!(decode_row(b"\x00\x00x").is_err());
    }
}
