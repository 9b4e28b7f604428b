//! The store's transition: what one committed command does to a [`KvState`] at its log
//! index, the same on every member, and the outcome a transaction reports to the node
//! that proposed it.
//!
//! Every write records its [`Event`] in the history; a delete of an absent key changes
//! nothing and records nothing. Reads inside a transaction see the branch's earlier
//! writes, and are only computed where someone waits for them (`reads`): the other
//! members apply the writes alone.

use super::command::{CmpOp, Compare, KvCommand, Op, Target, Ticket, Txn, MAX_PAGE_BYTES};
use super::history::{Event, EventKind};
use super::model::{Key, KeyEntry, KeyRecord, KvState, Page, Value};

/// What a transaction did, for the node that proposed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnOutcome {
    /// Whether every compare held (the success branch ran).
    pub succeeded: bool,
    /// One result per operation of the branch that ran.
    pub results: Vec<OpResult>,
    /// The `mod_index` of each compared key when the compares were evaluated (0 when
    /// absent): what a failed compare-and-swap reports.
    pub compared: Vec<u64>,
}

/// The result of one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// A put.
    Put,
    /// A delete or a prefix delete, and how many keys it removed.
    Delete {
        /// Keys removed.
        deleted: u64,
    },
    /// A get: the key, if live.
    Get(Option<KeyRecord>),
    /// A range: one page.
    Range(Page),
}

impl KvState {
    /// Applies `command`, committed at `index`. Returns the outcome of a transaction with
    /// a ticket; its reads are only computed when `reads`.
    pub fn apply(
        &mut self,
        command: KvCommand,
        index: u64,
        reads: bool,
    ) -> Option<(Ticket, TxnOutcome)> {
        debug_assert!(index >= self.revision, "applied out of order");
        self.revision = index;
        match command {
            KvCommand::Put { key, value } => {
                self.put(key, value, index);
                None
            }
            KvCommand::Delete { key } => {
                self.delete(&key, index);
                None
            }
            KvCommand::TakeSnapshot(_) => None,
            KvCommand::Txn { txn, ticket } => {
                let outcome = self.run(txn, index, reads && ticket.is_some());
                ticket.map(|t| (t, outcome))
            }
        }
    }

    fn put(&mut self, key: String, value: Vec<u8>, index: u64) {
        let value = Value::from(value);
        let key = Key::from(key);
        let (entry, prev) = match self.keys.get(&*key) {
            Some(old) => (
                KeyEntry {
                    value: value.clone(),
                    create_index: old.create_index,
                    mod_index: index,
                    version: old.version + 1,
                },
                Some(old.value.clone()),
            ),
            None => (
                KeyEntry {
                    value: value.clone(),
                    create_index: index,
                    mod_index: index,
                    version: 1,
                },
                None,
            ),
        };
        self.history.push(Event {
            revision: index,
            key: key.clone(),
            kind: EventKind::Put {
                value,
                create_index: entry.create_index,
                version: entry.version,
            },
            prev,
        });
        self.keys.insert(key, entry);
    }

    /// Removes `key`; 1 if it was live.
    fn delete(&mut self, key: &str, index: u64) -> u64 {
        match self.keys.remove_with_key(key) {
            Some((key, old)) => {
                self.history.push(Event {
                    revision: index,
                    key,
                    kind: EventKind::Delete,
                    prev: Some(old.value),
                });
                1
            }
            None => 0,
        }
    }

    /// Removes every key under `prefix`; how many.
    fn delete_prefix(&mut self, prefix: &str, index: u64) -> u64 {
        let doomed: Vec<Key> = self.under(prefix, None).map(|(k, _)| k.clone()).collect();
        for key in &doomed {
            self.delete(key, index);
        }
        doomed.len() as u64
    }

    fn holds(&self, compare: &Compare) -> bool {
        let entry = self.keys.get(compare.key.as_str());
        match &compare.target {
            Target::Value(operand) => {
                entry.is_some_and(|e| compare.op.holds(e.value.as_bytes(), operand.as_slice()))
            }
            Target::Version(n) => compare.op.holds(&entry.map_or(0, |e| e.version), n),
            Target::ModIndex(n) => compare.op.holds(&entry.map_or(0, |e| e.mod_index), n),
            Target::CreateIndex(n) => compare.op.holds(&entry.map_or(0, |e| e.create_index), n),
        }
    }

    fn run(&mut self, txn: Txn, index: u64, reads: bool) -> TxnOutcome {
        let succeeded = txn.compare.iter().all(|c| self.holds(c));
        let compared = if reads {
            txn.compare
                .iter()
                .map(|c| self.keys.get(c.key.as_str()).map_or(0, |e| e.mod_index))
                .collect()
        } else {
            Vec::new()
        };
        let ops = if succeeded { txn.success } else { txn.failure };
        let mut results = Vec::with_capacity(if reads { ops.len() } else { 0 });
        let mut budget = MAX_PAGE_BYTES;
        for op in ops {
            let result = match op {
                Op::Put { key, value } => {
                    self.put(key, value, index);
                    OpResult::Put
                }
                Op::Delete { key } => OpResult::Delete {
                    deleted: self.delete(&key, index),
                },
                Op::DeletePrefix { prefix } => OpResult::Delete {
                    deleted: self.delete_prefix(&prefix, index),
                },
                Op::Get { key } if reads => OpResult::Get(self.record(&key, false)),
                Op::Range(request) if reads => {
                    let page = self.range(&request, budget);
                    let used: usize = page
                        .records
                        .iter()
                        .map(|r| r.key.len() + r.value.as_ref().map_or(0, Value::len))
                        .sum();
                    budget = budget.saturating_sub(used).max(1);
                    OpResult::Range(page)
                }
                Op::Get { .. } | Op::Range(_) => continue,
            };
            if reads {
                results.push(result);
            }
        }
        TxnOutcome {
            succeeded,
            results,
            compared,
        }
    }
}

impl CmpOp {
    /// The operator as the API writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Gt => ">",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kv::model::RangeRequest;
    use crate::PeerId;

    const T: Ticket = Ticket {
        origin: PeerId([1; 32]),
        nonce: 9,
    };

    fn put(s: &mut KvState, index: u64, key: &str, value: &str) {
        s.apply(
            KvCommand::Put {
                key: key.into(),
                value: value.into(),
            },
            index,
            false,
        );
    }

    fn txn(s: &mut KvState, index: u64, txn: Txn) -> TxnOutcome {
        s.apply(
            KvCommand::Txn {
                txn,
                ticket: Some(T),
            },
            index,
            true,
        )
        .expect("a ticket gets an outcome")
        .1
    }

    fn cas(key: &str, mod_index: u64, value: &str) -> Txn {
        Txn {
            compare: vec![Compare {
                key: key.into(),
                target: Target::ModIndex(mod_index),
                op: CmpOp::Eq,
            }],
            success: vec![Op::Put {
                key: key.into(),
                value: value.into(),
            }],
            failure: vec![],
        }
    }

    #[test]
    fn revisions_follow_puts_and_deletes() {
        let mut s = KvState::default();
        put(&mut s, 3, "a", "1");
        put(&mut s, 5, "a", "2");
        let e = s.get("a").expect("live");
        assert_eq!((e.create_index, e.mod_index, e.version), (3, 5, 2));
        s.apply(KvCommand::Delete { key: "a".into() }, 6, false);
        assert!(s.get("a").is_none());
        s.apply(KvCommand::Delete { key: "a".into() }, 7, false);
        put(&mut s, 8, "a", "3");
        let e = s.get("a").expect("live again");
        assert_eq!((e.create_index, e.mod_index, e.version), (8, 8, 1));
        assert_eq!(s.revision, 8);
        let kinds: Vec<(u64, bool, Option<Value>)> = s
            .history
            .iter()
            .map(|e| {
                (
                    e.revision,
                    matches!(e.kind, EventKind::Put { .. }),
                    e.prev.clone(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (3, true, None),
                (5, true, Some(Value::from(&b"1"[..]))),
                (6, false, Some(Value::from(&b"2"[..]))),
                (8, true, None),
            ],
            "the delete of an absent key at 7 records nothing"
        );
    }

    #[test]
    fn compare_and_swap_on_mod_index() {
        let mut s = KvState::default();
        let created = txn(&mut s, 2, cas("c", 0, "1"));
        assert!(created.succeeded, "cas 0 creates an absent key");
        let again = txn(&mut s, 3, cas("c", 0, "x"));
        assert_eq!((again.succeeded, again.compared.clone()), (false, vec![2]));
        assert_eq!(
            s.get("c").map(|e| e.value.clone()),
            Some(Value::from(&b"1"[..]))
        );
        assert!(txn(&mut s, 4, cas("c", 2, "2")).succeeded);
        assert_eq!(s.get("c").map(|e| e.mod_index), Some(4));
    }

    #[test]
    fn compares_on_every_target_and_absent_keys() {
        let mut s = KvState::default();
        put(&mut s, 1, "k", "m");
        put(&mut s, 2, "k", "m2");
        let check = |s: &mut KvState, target: Target, op: CmpOp, key: &str| {
            let index = s.revision + 1;
            let t = Txn {
                compare: vec![Compare {
                    key: key.into(),
                    target,
                    op,
                }],
                ..Txn::default()
            };
            txn(s, index, t).succeeded
        };
        assert!(check(&mut s, Target::Version(2), CmpOp::Eq, "k"));
        assert!(check(&mut s, Target::Version(3), CmpOp::Lt, "k"));
        assert!(check(&mut s, Target::CreateIndex(0), CmpOp::Gt, "k"));
        assert!(check(&mut s, Target::ModIndex(2), CmpOp::Eq, "k"));
        assert!(check(&mut s, Target::Value(b"m1".to_vec()), CmpOp::Gt, "k"));
        assert!(check(&mut s, Target::Value(b"zz".to_vec()), CmpOp::Ne, "k"));
        assert!(!check(
            &mut s,
            Target::Value(b"m2".to_vec()),
            CmpOp::Ne,
            "k"
        ));
        assert!(check(&mut s, Target::Version(0), CmpOp::Eq, "absent"));
        for op in [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Gt] {
            assert!(
                !check(&mut s, Target::Value(Vec::new()), op, "absent"),
                "a value compare on an absent key is false ({op:?})"
            );
        }
    }

    #[test]
    fn a_branch_applies_whole_at_one_revision_and_reads_see_its_writes() {
        let mut s = KvState::default();
        put(&mut s, 1, "p/a", "1");
        put(&mut s, 2, "p/b", "2");
        let t = Txn {
            compare: vec![Compare {
                key: "p/a".into(),
                target: Target::Version(1),
                op: CmpOp::Eq,
            }],
            success: vec![
                Op::DeletePrefix {
                    prefix: "p/".into(),
                },
                Op::Put {
                    key: "q".into(),
                    value: b"x".to_vec(),
                },
                Op::Get { key: "q".into() },
                Op::Range(RangeRequest {
                    prefix: "p/".into(),
                    after: None,
                    limit: 10,
                    keys_only: false,
                }),
            ],
            failure: vec![Op::Delete { key: "q".into() }],
        };
        let out = txn(&mut s, 7, t);
        assert!(out.succeeded);
        assert_eq!(out.results[0], OpResult::Delete { deleted: 2 });
        assert!(matches!(&out.results[2], OpResult::Get(Some(r)) if r.mod_index == 7));
        assert_eq!(out.results[3], OpResult::Range(Page::default()));
        let revs: Vec<u64> = s.history.iter().map(|e| e.revision).collect();
        assert_eq!(revs, vec![1, 2, 7, 7, 7], "two deletes and a put, all at 7");
    }

    #[test]
    fn reads_are_skipped_where_nobody_waits() {
        let mut s = KvState::default();
        put(&mut s, 1, "a", "1");
        let t = Txn {
            success: vec![Op::Get { key: "a".into() }],
            ..Txn::default()
        };
        let (_, out) = s
            .apply(
                KvCommand::Txn {
                    txn: t,
                    ticket: Some(T),
                },
                2,
                false,
            )
            .expect("outcome");
        assert!(out.succeeded && out.results.is_empty());
    }
}
