//! The JSON the API reads and writes, shared by the node and its client: keys in ranges
//! and transactions ([`KvJson`]), write answers ([`Written`]), transactions
//! ([`TxnJson`], [`TxnAnswer`]) and watch lines ([`WatchLine`]). Values are base64
//! (standard alphabet, with padding) wherever they are inside JSON.

use crate::store::kv::command::{check_key, DEFAULT_RANGE_LIMIT};
use crate::store::kv::{
    CmpOp, Compare, Event, EventKind, KeyRecord, Op, OpResult, Page, RangeRequest, Target, Txn,
    TxnOutcome,
};
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Base64 of `bytes`.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The bytes of base64 `text`; the error names the problem.
pub fn unb64(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("not base64: {e}"))
}

/// Serde of optional bytes as optional base64.
pub mod b64_opt {
    use super::*;

    /// Serializes as base64, or null.
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(bytes) => s.serialize_some(&b64(bytes)),
            None => s.serialize_none(),
        }
    }

    /// Reads base64, or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => unb64(&text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// A key as ranges, transactions and watches answer it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvJson {
    /// The key.
    pub key: String,
    /// The value (base64); absent when only names were asked for.
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub value: Option<Vec<u8>>,
    /// Index of the write that created it.
    pub create_index: u64,
    /// Index of the write that last changed it.
    pub mod_index: u64,
    /// Writes since its creation.
    pub version: u64,
}

impl From<&KeyRecord> for KvJson {
    fn from(r: &KeyRecord) -> Self {
        KvJson {
            key: r.key.to_string(),
            value: r.value.as_ref().map(|v| v.as_bytes().to_vec()),
            create_index: r.create_index,
            mod_index: r.mod_index,
            version: r.version,
        }
    }
}

/// `GET /v1/kv/{prefix}?recurse`: one page of keys, all read at `revision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeAnswer {
    /// The store revision of the page.
    pub revision: u64,
    /// The keys, sorted.
    pub kvs: Vec<KvJson>,
    /// Whether keys follow: ask again with `after` = `next`.
    pub more: bool,
    /// The last key of the page, when `more`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /v1/kv/{prefix}?keys`: one page of key names, read at `revision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysAnswer {
    /// The store revision of the page.
    pub revision: u64,
    /// The names, sorted.
    pub keys: Vec<String>,
    /// Whether keys follow: ask again with `after` = `next`.
    pub more: bool,
    /// The last key of the page, when `more`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A page's `next`: its last key when more follow.
pub fn next_of(page: &Page) -> Option<String> {
    page.more
        .then(|| page.records.last().map(|r| r.key.to_string()))
        .flatten()
}

/// The answer to a write: the log index it was committed at (its revision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The command's log index.
    pub index: u64,
    /// Deletes: how many keys were removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
}

/// `POST /v1/txn`: a transaction.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnJson {
    /// All must hold for `success` to run.
    #[serde(default)]
    pub compare: Vec<CompareJson>,
    /// Run when every compare holds.
    #[serde(default)]
    pub success: Vec<OpJson>,
    /// Run otherwise.
    #[serde(default)]
    pub failure: Vec<OpJson>,
}

/// One compare: `{"key": K, "target": "mod_index", "op": "=", "value": 42}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareJson {
    /// The key.
    pub key: String,
    /// `value`, `version`, `mod_index` or `create_index`.
    pub target: String,
    /// `=`, `!=`, `<` or `>`.
    pub op: String,
    /// Base64 for `value`, a non-negative integer for the others.
    pub value: serde_json::Value,
}

impl CompareJson {
    /// A compare of one of the numeric targets.
    pub fn number(key: &str, target: &str, op: &str, n: u64) -> Self {
        CompareJson {
            key: key.into(),
            target: target.into(),
            op: op.into(),
            value: serde_json::Value::from(n),
        }
    }

    /// A compare of the value.
    pub fn value(key: &str, op: &str, bytes: &[u8]) -> Self {
        CompareJson {
            key: key.into(),
            target: "value".into(),
            op: op.into(),
            value: serde_json::Value::from(b64(bytes)),
        }
    }

    fn parse(&self) -> Result<Compare, String> {
        check_key(&self.key, false)?;
        let op = match self.op.as_str() {
            "=" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            ">" => CmpOp::Gt,
            other => {
                return Err(format!(
                    "unknown compare operator {other:?} (expected =, !=, < or >)"
                ))
            }
        };
        let number = || {
            self.value.as_u64().ok_or_else(|| {
                format!(
                    "{} compares with a non-negative integer, got {}",
                    self.target, self.value
                )
            })
        };
        let target = match self.target.as_str() {
            "value" => {
                let text = self.value.as_str().ok_or_else(|| {
                    format!("value compares with a base64 string, got {}", self.value)
                })?;
                Target::Value(unb64(text).map_err(|e| format!("value: {e}"))?)
            }
            "version" => Target::Version(number()?),
            "mod_index" => Target::ModIndex(number()?),
            "create_index" => Target::CreateIndex(number()?),
            other => {
                return Err(format!(
                    "unknown compare target {other:?} (expected value, version, mod_index or create_index)"
                ))
            }
        };
        Ok(Compare {
            key: self.key.clone(),
            target,
            op,
        })
    }
}

/// One operation: `{"op": "put", "key": K, "value": BASE64}`, `{"op": "delete", "key":
/// K}`, `{"op": "delete_prefix", "prefix": P}`, `{"op": "get", "key": K}` or `{"op":
/// "range", "prefix": P, "after": K, "limit": N, "keys_only": false}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum OpJson {
    /// Sets a key.
    Put {
        /// The key.
        key: String,
        /// The value, base64.
        value: String,
    },
    /// Removes a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Removes the keys under a prefix.
    DeletePrefix {
        /// The prefix.
        prefix: String,
    },
    /// Reads a key.
    Get {
        /// The key.
        key: String,
    },
    /// Reads a page of the keys under a prefix.
    Range {
        /// The prefix.
        prefix: String,
        /// Only keys after this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        /// At most this many (default 1,000, at most 10,000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        /// Names and revisions only.
        #[serde(default)]
        keys_only: bool,
    },
}

impl OpJson {
    /// A put of `value`.
    pub fn put(key: &str, value: &[u8]) -> Self {
        OpJson::Put {
            key: key.into(),
            value: b64(value),
        }
    }

    fn parse(&self) -> Result<Op, String> {
        Ok(match self {
            OpJson::Put { key, value } => Op::Put {
                key: key.clone(),
                value: unb64(value).map_err(|e| format!("value: {e}"))?,
            },
            OpJson::Delete { key } => Op::Delete { key: key.clone() },
            OpJson::DeletePrefix { prefix } => Op::DeletePrefix {
                prefix: prefix.clone(),
            },
            OpJson::Get { key } => Op::Get { key: key.clone() },
            OpJson::Range {
                prefix,
                after,
                limit,
                keys_only,
            } => Op::Range(RangeRequest {
                prefix: prefix.clone(),
                after: after.clone(),
                limit: limit.unwrap_or(DEFAULT_RANGE_LIMIT),
                keys_only: *keys_only,
            }),
        })
    }
}

impl TxnJson {
    /// The transaction it describes, checked ([`Txn::validate`]); the error names the
    /// compare or operation at fault.
    pub fn parse(&self) -> Result<Txn, String> {
        let compare = self
            .compare
            .iter()
            .enumerate()
            .map(|(i, c)| c.parse().map_err(|e| format!("compare {i}: {e}")))
            .collect::<Result<_, _>>()?;
        let ops = |branch: &str, ops: &[OpJson]| {
            ops.iter()
                .enumerate()
                .map(|(i, op)| {
                    op.parse()
                        .map_err(|e| format!("{branch} operation {i}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let txn = Txn {
            compare,
            success: ops("success", &self.success)?,
            failure: ops("failure", &self.failure)?,
        };
        txn.validate()?;
        Ok(txn)
    }
}

/// The answer to a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnAnswer {
    /// Whether every compare held (the success branch ran).
    pub succeeded: bool,
    /// The log index of the transaction (the revision of its writes).
    pub index: u64,
    /// One per operation of the branch that ran.
    pub results: Vec<OpAnswer>,
}

/// The result of one operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpAnswer {
    /// A put.
    Put {},
    /// A delete or prefix delete.
    Delete {
        /// Keys removed.
        deleted: u64,
    },
    /// A get; `kv` is null when the key is absent.
    Get {
        /// The key.
        kv: Option<KvJson>,
    },
    /// A range page.
    Range {
        /// The keys.
        kvs: Vec<KvJson>,
        /// Whether more follow.
        more: bool,
        /// The last key, when more follow.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
}

impl TxnAnswer {
    /// The answer for `outcome`, committed at `index`.
    pub fn new(index: u64, outcome: &TxnOutcome) -> Self {
        let results = outcome
            .results
            .iter()
            .map(|r| match r {
                OpResult::Put => OpAnswer::Put {},
                OpResult::Delete { deleted } => OpAnswer::Delete { deleted: *deleted },
                OpResult::Get(record) => OpAnswer::Get {
                    kv: record.as_ref().map(KvJson::from),
                },
                OpResult::Range(page) => OpAnswer::Range {
                    kvs: page.records.iter().map(KvJson::from).collect(),
                    more: page.more,
                    next: next_of(page),
                },
            })
            .collect();
        TxnAnswer {
            succeeded: outcome.succeeded,
            index,
            results,
        }
    }
}

/// One line of a watch stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchLine {
    /// A key was set.
    Put {
        /// The key.
        key: String,
        /// The new value, base64.
        #[serde(with = "b64_opt")]
        value: Option<Vec<u8>>,
        /// The write's revision.
        mod_index: u64,
        /// The key's `create_index`.
        create_index: u64,
        /// The key's version.
        version: u64,
        /// The value before, base64 (with `prev`; absent when the put created the key).
        #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
        prev_value: Option<Vec<u8>>,
    },
    /// A key was removed.
    Delete {
        /// The key.
        key: String,
        /// The delete's revision.
        mod_index: u64,
        /// The value before, base64 (with `prev`).
        #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
        prev_value: Option<Vec<u8>>,
    },
    /// Every matching event up to `revision` has been sent: resume from `revision + 1`.
    Progress {
        /// The revision.
        revision: u64,
    },
    /// The node ends the stream; resume from `resume_from` (on any node).
    Closed {
        /// Why.
        reason: String,
        /// The first revision not yet fully sent.
        resume_from: u64,
    },
}

impl WatchLine {
    /// The line for `event`; with its previous value when `prev`.
    pub fn event(event: &Event, prev: bool) -> Self {
        let prev_value = if prev {
            event.prev.as_ref().map(|v| v.as_bytes().to_vec())
        } else {
            None
        };
        match &event.kind {
            EventKind::Put {
                value,
                create_index,
                version,
            } => WatchLine::Put {
                key: event.key.to_string(),
                value: Some(value.as_bytes().to_vec()),
                mod_index: event.revision,
                create_index: *create_index,
                version: *version,
                prev_value,
            },
            EventKind::Delete => WatchLine::Delete {
                key: event.key.to_string(),
                mod_index: event.revision,
                prev_value,
            },
        }
    }

    /// The revision of an event line.
    pub fn mod_index(&self) -> Option<u64> {
        match self {
            WatchLine::Put { mod_index, .. } | WatchLine::Delete { mod_index, .. } => {
                Some(*mod_index)
            }
            WatchLine::Progress { .. } | WatchLine::Closed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_parses_from_json_and_names_what_is_wrong() {
        let json = r#"{
            "compare": [{"key": "a", "target": "mod_index", "op": "=", "value": 0}],
            "success": [{"op": "put", "key": "a", "value": "aGk="},
                        {"op": "range", "prefix": "p/", "limit": 5}],
            "failure": [{"op": "get", "key": "a"}]
        }"#;
        let txn: TxnJson = serde_json::from_str(json).expect("json");
        let parsed = txn.parse().expect("valid");
        assert_eq!(parsed.compare[0].target, Target::ModIndex(0));
        assert_eq!(
            parsed.success[0],
            Op::Put {
                key: "a".into(),
                value: b"hi".to_vec()
            }
        );
        let bad = |json: &str| {
            serde_json::from_str::<TxnJson>(json)
                .map_err(|e| e.to_string())
                .and_then(|t| t.parse())
                .expect_err(json)
        };
        let e = bad(r#"{"compare": [{"key": "a", "target": "size", "op": "=", "value": 1}]}"#);
        assert!(
            e.contains("compare 0: unknown compare target \"size\""),
            "{e}"
        );
        let e = bad(r#"{"compare": [{"key": "a", "target": "version", "op": "=", "value": -1}]}"#);
        assert!(e.contains("non-negative integer"), "{e}");
        let e = bad(r#"{"compare": [{"key": "a", "target": "version", "op": "~", "value": 1}]}"#);
        assert!(e.contains("unknown compare operator"), "{e}");
        let e = bad(r#"{"success": [{"op": "put", "key": "a", "value": "%%"}]}"#);
        assert!(e.contains("success operation 0: value: not base64"), "{e}");
        let e = bad(r#"{"success": [{"op": "upsert", "key": "a"}]}"#);
        assert!(e.contains("unknown variant"), "{e}");
        let e = bad(r#"{"sucess": []}"#);
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn watch_lines_round_trip() {
        let line = WatchLine::Put {
            key: "k".into(),
            value: Some(b"v".to_vec()),
            mod_index: 3,
            create_index: 2,
            version: 2,
            prev_value: None,
        };
        let text = serde_json::to_string(&line).expect("json");
        assert_eq!(
            text,
            r#"{"type":"put","key":"k","value":"dg==","mod_index":3,"create_index":2,"version":2}"#
        );
        assert_eq!(
            serde_json::from_str::<WatchLine>(&text).expect("back"),
            line
        );
        let p = serde_json::to_string(&WatchLine::Progress { revision: 9 }).expect("json");
        assert_eq!(p, r#"{"type":"progress","revision":9}"#);
    }
}
