//! What goes through the log ([`KvCommand`], with [`Txn`] for everything conditional) and
//! what the group's query answers ([`KvQuery`]), with the bounds every node checks before
//! proposing.

use super::model::RangeRequest;
use crate::groups::snapshot::SnapshotRequest;
use crate::PeerId;
use serde::{Deserialize, Serialize};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Largest value, in bytes (1 MiB).
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// Most compares, and most operations in each branch, of one transaction (etcd's default
/// `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// Most value bytes the puts of one transaction carry (4 MiB: one log entry stays well
/// below the group's 8 MiB limit).
pub const MAX_TXN_VALUE_BYTES: usize = 4 << 20;

/// Default number of keys in one page of a range.
pub const DEFAULT_RANGE_LIMIT: u32 = 1000;

/// Most keys in one page of a range.
pub const MAX_RANGE_LIMIT: u32 = 10_000;

/// Most value bytes in one page of a range (past its first key), and in all the reads of
/// one transaction together (16 MiB).
pub const MAX_PAGE_BYTES: usize = 16 << 20;

/// A change to the store. Variants keep their order: the log of a running group holds
/// them encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    /// Sets `key` to `value`, unconditionally.
    Put {
        /// The key.
        key: String,
        /// The value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Removes `key`, unconditionally (no change when absent).
    Delete {
        /// The key.
        key: String,
    },
    /// A snapshot marker (proposed by the leader's sync provider; changes nothing).
    TakeSnapshot(SnapshotRequest),
    /// Compares, then one branch of operations, as one entry. Compare-and-swap puts and
    /// deletes and prefix deletes are transactions too.
    Txn {
        /// The transaction.
        txn: Txn,
        /// Who waits for the outcome (the node that proposed it).
        ticket: Option<Ticket>,
    },
}

/// Who waits for a command's outcome: the node that proposed it and its registration
/// there (see [`super::Outcomes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The proposing node.
    pub origin: PeerId,
    /// Its registration.
    pub nonce: u64,
}

/// A transaction: if every compare holds, the `success` operations run, else the
/// `failure` ones, in order, all at the revision of its log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// All must hold (none: success).
    pub compare: Vec<Compare>,
    /// Run when they do.
    pub success: Vec<Op>,
    /// Run when one does not.
    pub failure: Vec<Op>,
}

/// One condition on one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The key.
    pub key: String,
    /// What is compared, and with what.
    pub target: Target,
    /// How.
    pub op: CmpOp,
}

/// What a compare reads from the key, and the operand. An absent key has version,
/// `mod_index` and `create_index` 0; a compare on the value of an absent key is false
/// whatever the operator (as in etcd).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// The value's bytes (ordered lexicographically).
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The key's version.
    Version(u64),
    /// The key's `mod_index`.
    ModIndex(u64),
    /// The key's `create_index`.
    CreateIndex(u64),
}

/// A compare's operator: the key's field `op` the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
}

impl CmpOp {
    /// Whether `found op operand` holds.
    pub fn holds<T: Ord + ?Sized>(self, found: &T, operand: &T) -> bool {
        match self {
            CmpOp::Eq => found == operand,
            CmpOp::Ne => found != operand,
            CmpOp::Lt => found < operand,
            CmpOp::Gt => found > operand,
        }
    }
}

/// One operation of a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Sets `key`.
    Put {
        /// The key.
        key: String,
        /// The value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Removes every key under `prefix` (every key when empty).
    DeletePrefix {
        /// The prefix.
        prefix: String,
    },
    /// Reads `key` (seeing the branch's earlier writes).
    Get {
        /// The key.
        key: String,
    },
    /// Reads a page of the keys under a prefix (seeing the branch's earlier writes).
    Range(RangeRequest),
}

impl Op {
    /// The key it writes, or the prefix it deletes (`true`), if it writes.
    fn writes(&self) -> Option<(&str, bool)> {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => Some((key, false)),
            Op::DeletePrefix { prefix } => Some((prefix, true)),
            Op::Get { .. } | Op::Range(_) => None,
        }
    }
}

/// Checks a key (`prefix`: may be empty).
pub fn check_key(key: &str, prefix: bool) -> Result<(), String> {
    if key.is_empty() && !prefix {
        return Err("empty key".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "key of {} bytes exceeds {MAX_KEY_BYTES}",
            key.len()
        ));
    }
    // Proxies, curl and URL libraries rewrite such paths (`a/../b` becomes `b`), so a key
    // holding them would not be the key the client meant: refused, not stored.
    if let Some((at, c)) = key.char_indices().find(|(_, c)| c.is_control()) {
        return Err(format!(
            "key holds the control character U+{:04X} at byte {at}",
            u32::from(c)
        ));
    }
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(
            "key has a \".\" or \"..\" path segment, which proxies and clients rewrite".into(),
        );
    }
    Ok(())
}

impl Txn {
    /// Checks the bounds and that each branch writes each key once (two writes of one
    /// key, or a write under a prefix the branch deletes, at the same revision are
    /// refused, as etcd does). The message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        for (name, n) in [
            ("compares", self.compare.len()),
            ("success operations", self.success.len()),
            ("failure operations", self.failure.len()),
        ] {
            if n > MAX_TXN_OPS {
                return Err(format!(
                    "too many operations: {n} {name} (at most {MAX_TXN_OPS})"
                ));
            }
        }
        for (i, c) in self.compare.iter().enumerate() {
            check_key(&c.key, false).map_err(|e| format!("compare {i}: {e}"))?;
        }
        let mut value_bytes = 0usize;
        for (branch, ops) in [("success", &self.success), ("failure", &self.failure)] {
            for (i, op) in ops.iter().enumerate() {
                let at = |e: String| format!("{branch} operation {i}: {e}");
                match op {
                    Op::Put { key, value } => {
                        check_key(key, false).map_err(at)?;
                        if value.len() > MAX_VALUE_BYTES {
                            return Err(at(format!(
                                "value of {} bytes exceeds {MAX_VALUE_BYTES}",
                                value.len()
                            )));
                        }
                        value_bytes += value.len();
                    }
                    Op::Delete { key } | Op::Get { key } => check_key(key, false).map_err(at)?,
                    Op::DeletePrefix { prefix } => check_key(prefix, true).map_err(at)?,
                    Op::Range(r) => {
                        check_key(&r.prefix, true).map_err(at)?;
                        if r.limit == 0 || r.limit > MAX_RANGE_LIMIT {
                            return Err(at(format!(
                                "range limit {} outside 1..={MAX_RANGE_LIMIT}",
                                r.limit
                            )));
                        }
                    }
                }
            }
            check_overlaps(branch, ops)?;
        }
        if value_bytes > MAX_TXN_VALUE_BYTES {
            return Err(format!(
                "the puts carry {value_bytes} bytes of values, above {MAX_TXN_VALUE_BYTES}"
            ));
        }
        Ok(())
    }
}

/// Refuses two writes of one key in a branch, and a write under a prefix it deletes.
fn check_overlaps(branch: &str, ops: &[Op]) -> Result<(), String> {
    let writes: Vec<(usize, &str, bool)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| op.writes().map(|(k, p)| (i, k, p)))
        .collect();
    for (n, &(i, a, a_prefix)) in writes.iter().enumerate() {
        for &(j, b, b_prefix) in &writes[n + 1..] {
            let overlap = match (a_prefix, b_prefix) {
                (false, false) => a == b,
                (true, false) => b.starts_with(a),
                (false, true) => a.starts_with(b),
                (true, true) => a.starts_with(b) || b.starts_with(a),
            };
            if overlap {
                return Err(format!(
                    "{branch} operations {i} and {j} both write {:?}: a transaction writes each key once",
                    if a.len() >= b.len() { a } else { b }
                ));
            }
        }
    }
    Ok(())
}

/// A read through the group (the HTTP API reads the published state instead; these serve
/// tests and embedders).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvQuery {
    /// The value of `key`.
    Get {
        /// The key.
        key: String,
    },
    /// How many keys there are.
    Len,
    /// The store's revision (a strong query of it is a linearizable read barrier).
    Revision,
}

/// A query's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResult {
    /// The value, when present.
    Value(Option<Vec<u8>>),
    /// A count.
    Len(u64),
    /// A revision.
    Revision(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> Op {
        Op::Put {
            key: key.into(),
            value: b"v".to_vec(),
        }
    }

    #[test]
    fn keys_that_paths_would_rewrite_are_refused() {
        for bad in ["a/../b", "..", "a/.", "./a", "a\0b", "tab\there"] {
            assert!(check_key(bad, false).is_err(), "{bad:?} accepted");
            assert!(
                check_key(bad, true).is_err(),
                "{bad:?} accepted as a prefix"
            );
        }
        for good in ["a/b", "a..b", ".hidden", "a/.b/c", "app/", "x.y/z..w"] {
            assert_eq!(check_key(good, false), Ok(()), "{good:?}");
        }
        assert_eq!(check_key("", true), Ok(()));
        assert!(check_key("", false).is_err());
    }

    #[test]
    fn a_branch_writes_each_key_once() {
        let ok = Txn {
            success: vec![
                put("a"),
                put("b"),
                Op::DeletePrefix {
                    prefix: "c/".into(),
                },
            ],
            failure: vec![put("a")],
            ..Txn::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        for ops in [
            vec![put("a"), put("a")],
            vec![
                put("c/x"),
                Op::DeletePrefix {
                    prefix: "c/".into(),
                },
            ],
            vec![
                Op::DeletePrefix { prefix: "c".into() },
                Op::DeletePrefix {
                    prefix: "c/d".into(),
                },
            ],
            vec![Op::Delete { key: "a".into() }, put("a")],
        ] {
            let txn = Txn {
                success: ops.clone(),
                ..Txn::default()
            };
            let err = txn.validate().expect_err("overlap");
            assert!(err.contains("write"), "{ops:?}: {err}");
        }
    }

    #[test]
    fn bounds_are_named() {
        let many = Txn {
            success: (0..=MAX_TXN_OPS).map(|i| put(&format!("k{i}"))).collect(),
            ..Txn::default()
        };
        let err = many.validate().expect_err("too many");
        assert!(err.contains("too many operations: 129 success"), "{err}");
        let range = Txn {
            success: vec![Op::Range(RangeRequest {
                prefix: String::new(),
                after: None,
                limit: 0,
                keys_only: false,
            })],
            ..Txn::default()
        };
        assert!(range
            .validate()
            .expect_err("limit")
            .contains("range limit 0"));
        let empty = Txn {
            compare: vec![Compare {
                key: String::new(),
                target: Target::Version(0),
                op: CmpOp::Eq,
            }],
            ..Txn::default()
        };
        assert!(empty
            .validate()
            .expect_err("key")
            .contains("compare 0: empty key"));
    }
}
