//! A minimal simple-protocol client over an upstream login: sends one Query
//! and collects, per statement, its rows (text format) or its error. The
//! catalog loader uses it; so does the soundness oracle in `tests/`.

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::CatalogError;
use crate::config::ConnectionConfig;
use crate::pg::backend::BackendMessage;
use crate::pg::ready::TxStatus;
use crate::pg::{read_frame, CodecError, ErrorFields, Frame, Reader};
use crate::session::stream::BoxStream;
use crate::session::upstream;

/// Largest message accepted from the database.
const MAX_MESSAGE: usize = 64 << 20;

/// One row: each column as text, `None` for NULL.
pub type Row = Vec<Option<String>>;

/// What one statement of a Query produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It completed with this command tag and these rows.
    Done {
        /// Command tag.
        tag: String,
        /// Rows (text format).
        rows: Vec<Row>,
    },
    /// It failed.
    Failed(ErrorFields),
}

/// A logged-in connection that runs simple-protocol queries.
pub struct Client {
    stream: BoxStream,
    buf: BytesMut,
    /// The connection's backend pid.
    pub pid: i32,
    /// The transaction status at the last ReadyForQuery.
    pub status: TxStatus,
}

impl Client {
    /// Logs in with the connection's held credential.
    pub async fn connect(
        conn: &ConnectionConfig,
        application_name: &str,
    ) -> Result<Self, CatalogError> {
        let up = upstream::connect(conn, application_name, &[]).await?;
        Ok(Self {
            stream: up.stream,
            buf: up.leftover,
            pid: up.key.pid,
            status: TxStatus::Idle,
        })
    }

    /// Sends `sql` (bytes in the session's client encoding) as one Query
    /// and reads to ReadyForQuery. A `COPY ... FROM STDIN` is answered
    /// with CopyFail; `COPY ... TO STDOUT` data is dropped.
    pub async fn query(&mut self, sql: &[u8]) -> Result<Vec<Outcome>, CatalogError> {
        let mut body = BytesMut::with_capacity(sql.len() + 1);
        crate::pg::put_cbytes(&mut body, sql);
        self.send(Frame::new(b'Q', body)).await?;
        let mut out = Vec::new();
        let mut rows = Vec::new();
        loop {
            let frame = read_frame(&mut self.stream, &mut self.buf, MAX_MESSAGE)
                .await?
                .ok_or(CatalogError::Closed)?;
            match BackendMessage::decode(frame.tag, &frame.body)? {
                BackendMessage::DataRow(body) => rows.push(decode_row(body)?),
                BackendMessage::CommandComplete(tag) => out.push(Outcome::Done {
                    tag: String::from_utf8_lossy(tag).into_owned(),
                    rows: std::mem::take(&mut rows),
                }),
                BackendMessage::EmptyQueryResponse => out.push(Outcome::Done {
                    tag: String::new(),
                    rows: Vec::new(),
                }),
                BackendMessage::ErrorResponse(body) => {
                    rows.clear();
                    out.push(Outcome::Failed(ErrorFields::decode(body)?));
                }
                BackendMessage::CopyInResponse => {
                    let mut b = BytesMut::new();
                    crate::pg::put_cstr(&mut b, "portcullis client sends no COPY data");
                    self.send(Frame::new(b'f', b)).await?;
                }
                BackendMessage::ReadyForQuery(status) => {
                    self.status = status;
                    return Ok(out);
                }
                _ => {}
            }
        }
    }

    /// Runs one statement that must succeed and returns its rows.
    pub async fn rows(&mut self, sql: &str) -> Result<Vec<Row>, CatalogError> {
        let mut outcomes = self.query(sql.as_bytes()).await?;
        match outcomes.pop() {
            Some(Outcome::Done { rows, .. }) if outcomes.is_empty() => Ok(rows),
            Some(Outcome::Failed(e)) => Err(CatalogError::Query(e.message)),
            _ => Err(CatalogError::Query(
                "expected one statement's result".into(),
            )),
        }
    }

    async fn send(&mut self, frame: Frame) -> Result<(), CatalogError> {
        self.stream
            .write_all(&frame.to_bytes())
            .await
            .map_err(CodecError::from)?;
        Ok(())
    }
}

/// Decodes a DataRow body (text format).
fn decode_row(body: &[u8]) -> Result<Row, CodecError> {
    let mut r = Reader::new("DataRow", body);
    let n = r.i16()?;
    let mut row = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        let len = r.i32()?;
        row.push(if len < 0 {
            None
        } else {
            Some(String::from_utf8_lossy(r.bytes(len as usize)?).into_owned())
        });
    }
    r.finish()?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_rows() {
        let body = [0, 2, 0, 0, 0, 1, b'x', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            super::decode_row(&body).unwrap(),
            vec![Some("x".to_string()), None]
        );
        assert!(super::decode_row(&[0, 1, 0, 0, 0, 5, b'x']).is_err());
        assert!(super::decode_row(&[0, 1, 0, 0, 0, 0, 9]).is_err());
    }
}
