//! A reader of PostgreSQL's logical replication messages (`pgoutput`, protocol version 1),
//! as `pg_logical_slot_peek_binary_changes` returns them: what an online move replays
//! (see `postgres::mover`). Only what a move needs: transactions, relations, and row
//! changes with their values in text form (each value is its type's output, which the
//! type's input takes back exactly).
//!
//! The format: <https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html>.

use orgwall_core::{Error, Result};

/// One column value of a row change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    /// A TOASTed value the change did not touch (an UPDATE leaves it as it was).
    Unchanged,
    Text(String),
}

/// A relation as the stream describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Relation {
    pub(crate) id: u32,
    pub(crate) schema: String,
    pub(crate) name: String,
    /// Column names, in the order of every tuple of this relation.
    pub(crate) columns: Vec<String>,
    /// Which columns are part of the replica identity (the primary key).
    pub(crate) key: Vec<bool>,
}

/// One message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    Begin {
        /// The LSN of the transaction's commit record.
        final_lsn: u64,
    },
    Commit {
        /// The end of the commit record: where a slot that has applied this
        /// transaction may move on to.
        end_lsn: u64,
    },
    Relation(Relation),
    Insert {
        rel: u32,
        new: Vec<Value>,
    },
    Update {
        rel: u32,
        /// The old key, when the key changed (`K`) or the whole old row (`O`).
        old: Option<Vec<Value>>,
        new: Vec<Value>,
    },
    Delete {
        rel: u32,
        /// The key (`K`) or the whole old row (`O`).
        old: Vec<Value>,
    },
    Truncate,
    /// Origin, type and logical-message messages: nothing a move replays.
    Other,
}

struct Reader<'a> {
    buf: &'a [u8],
}

fn short() -> Error {
    Error::Internal("a logical replication message ended early".into())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(short());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        self.take(1)?.first().copied().ok_or_else(short)
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes(b.try_into().map_err(|_| short())?))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes(b.try_into().map_err(|_| short())?))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes(b.try_into().map_err(|_| short())?))
    }

    /// A NUL-terminated string.
    fn cstr(&mut self) -> Result<String> {
        let end = self.buf.iter().position(|&b| b == 0).ok_or_else(short)?;
        let s = std::str::from_utf8(self.take(end)?)
            .map_err(|_| Error::Internal("a logical replication name is not UTF-8".into()))?
            .to_owned();
        self.take(1)?;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<Value>> {
        let n = self.u16()?;
        let mut out = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            out.push(match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' => {
                    let len = usize::try_from(self.u32()?).map_err(Error::internal)?;
                    let bytes = self.take(len)?;
                    Value::Text(
                        std::str::from_utf8(bytes)
                            .map_err(|_| Error::Internal("a replicated value is not UTF-8".into()))?
                            .to_owned(),
                    )
                }
                other => {
                    return Err(Error::Internal(format!(
                        "a replicated value of kind {:?} (only text is asked for)",
                        char::from(other)
                    )))
                }
            });
        }
        Ok(out)
    }
}

/// Reads one message.
pub(crate) fn parse(data: &[u8]) -> Result<Message> {
    let mut r = Reader { buf: data };
    Ok(match r.u8()? {
        b'B' => {
            let final_lsn = r.u64()?;
            Message::Begin { final_lsn }
        }
        b'C' => {
            let _flags = r.u8()?;
            let _commit_lsn = r.u64()?;
            let end_lsn = r.u64()?;
            Message::Commit { end_lsn }
        }
        b'R' => {
            let id = r.u32()?;
            let schema = r.cstr()?;
            let name = r.cstr()?;
            let _identity = r.u8()?;
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(usize::from(n));
            let mut key = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                key.push(r.u8()? & 1 == 1);
                columns.push(r.cstr()?);
                let _type = r.u32()?;
                let _typmod = r.u32()?;
            }
            Message::Relation(Relation {
                id,
                schema,
                name,
                columns,
                key,
            })
        }
        b'I' => {
            let rel = r.u32()?;
            if r.u8()? != b'N' {
                return Err(Error::Internal("an INSERT without its new row".into()));
            }
            Message::Insert {
                rel,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let rel = r.u32()?;
            let (old, new) = match r.u8()? {
                b'K' | b'O' => {
                    let old = r.tuple()?;
                    if r.u8()? != b'N' {
                        return Err(Error::Internal("an UPDATE without its new row".into()));
                    }
                    (Some(old), r.tuple()?)
                }
                b'N' => (None, r.tuple()?),
                _ => return Err(Error::Internal("an UPDATE of an unknown form".into())),
            };
            Message::Update { rel, old, new }
        }
        b'D' => {
            let rel = r.u32()?;
            match r.u8()? {
                b'K' | b'O' => {}
                _ => return Err(Error::Internal("a DELETE without its key".into())),
            }
            Message::Delete {
                rel,
                old: r.tuple()?,
            }
        }
        b'T' => Message::Truncate,
        _ => Message::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(vals: &[Option<&str>]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&u16::try_from(vals.len()).unwrap().to_be_bytes());
        for v in vals {
            match v {
                None => b.push(b'n'),
                Some(s) => {
                    b.push(b't');
                    b.extend_from_slice(&u32::try_from(s.len()).unwrap().to_be_bytes());
                    b.extend_from_slice(s.as_bytes());
                }
            }
        }
        b
    }

    #[test]
    fn reads_the_messages_a_move_replays() {
        let mut rel = vec![b'R'];
        rel.extend_from_slice(&16_390u32.to_be_bytes());
        rel.extend_from_slice(b"public\0tickets\0d");
        rel.extend_from_slice(&2u16.to_be_bytes());
        for (flag, name) in [(1u8, "id"), (0, "title")] {
            rel.push(flag);
            rel.extend_from_slice(name.as_bytes());
            rel.push(0);
            rel.extend_from_slice(&25u32.to_be_bytes());
            rel.extend_from_slice(&u32::MAX.to_be_bytes());
        }
        assert_eq!(
            parse(&rel).unwrap(),
            Message::Relation(Relation {
                id: 16_390,
                schema: "public".into(),
                name: "tickets".into(),
                columns: vec!["id".into(), "title".into()],
                key: vec![true, false],
            })
        );
        let mut ins = vec![b'I'];
        ins.extend_from_slice(&16_390u32.to_be_bytes());
        ins.push(b'N');
        ins.extend(tuple(&[Some("1"), None]));
        assert_eq!(
            parse(&ins).unwrap(),
            Message::Insert {
                rel: 16_390,
                new: vec![Value::Text("1".into()), Value::Null]
            }
        );
        let mut del = vec![b'D'];
        del.extend_from_slice(&16_390u32.to_be_bytes());
        del.push(b'K');
        del.extend(tuple(&[Some("1"), None]));
        assert!(matches!(
            parse(&del).unwrap(),
            Message::Delete { rel: 16_390, .. }
        ));
        let mut commit = vec![b'C', 0];
        commit.extend_from_slice(&7u64.to_be_bytes());
        commit.extend_from_slice(&9u64.to_be_bytes());
        commit.extend_from_slice(&0u64.to_be_bytes());
        assert_eq!(parse(&commit).unwrap(), Message::Commit { end_lsn: 9 });
        // Cut anywhere, a message is an error, never a panic or a shorter row.
        for cut in 1..ins.len() {
            assert!(parse(&ins[..cut]).is_err(), "cut at {cut}");
        }
        for cut in 1..rel.len() {
            assert!(parse(&rel[..cut]).is_err(), "cut at {cut}");
        }
    }
}
