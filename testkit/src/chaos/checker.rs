//! Linearizability checker for the histories the nemesis suite records.
//!
//! A port of Porcupine's algorithm (<https://github.com/anishathalye/porcupine>,
//! `checker.go`): Wing & Gong's depth-first search for a linearization over a doubly linked
//! list of call and return entries, from which a linearized operation is lifted (and put
//! back on backtracking); Lowe's memoization, a cache of the (set of linearized operations,
//! model state) pairs already explored, so no configuration is searched twice; and
//! P-compositionality: the history is split by key and each key's register is checked on
//! its own, which is what keeps the search tractable.
//!
//! As in Porcupine, an operation whose outcome is unknown returns "at infinity", after every
//! other event: it may take effect at any point after its call, or never. A CAS with no
//! answer may or may not have applied, so the model is nondeterministic; as Porcupine does
//! for such models, the search state is the set of register states the linearized prefix
//! could have left. Keys are checked one after another rather than in parallel: the suite
//! runs on small machines, and a key's search usually takes microseconds.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

/// One client call as the suite recorded it. Times are nanoseconds since the run started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client that made the call; only used to describe the operation.
    pub client: usize,
    /// The key the call touched: the unit the history is partitioned by.
    pub key: String,
    /// When the call was sent.
    pub call: u64,
    /// When the answer came; `None` when the outcome is unknown (timeout, connection lost):
    /// the operation may have taken effect at any time after `call`, or never.
    pub ret: Option<u64>,
    /// What was asked.
    pub input: Input,
    /// What was answered.
    pub output: Output,
}

/// What a client asked of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A linearizable read of the key.
    Get,
    /// Write `value` (values are unique per run).
    Put {
        /// The value written.
        value: u64,
    },
    /// Delete the key.
    Delete,
    /// Write `value` only if the key's mod_index is `expect` (0 = only if absent).
    Cas {
        /// The mod_index the key must have for the write to happen.
        expect: u64,
        /// The value written if it does.
        value: u64,
    },
}

/// What the cluster answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// No answer (only with `ret: None`); any outcome is possible.
    Unknown,
    /// A read's answer: the value and its mod_index, or absent.
    Read(Option<(u64, u64)>),
    /// A put, delete or successful CAS took effect at this log index (the key's new
    /// mod_index; for a delete the key is then absent).
    Written {
        /// The log index the write took effect at.
        index: u64,
    },
    /// A CAS whose comparison failed: the key's mod_index at that moment (0 when absent).
    CasFailed {
        /// The key's mod_index when the comparison failed.
        current: u64,
    },
}

/// The outcome of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history has a linearization.
    Linearizable,
    /// Some key's history has none (or holds a record no client could have made).
    Violation(Violation),
    /// The search for this key ran out of budget before deciding, so a pathological history
    /// cannot hang a test; no other key was found in violation.
    Unknown {
        /// The key whose search ran out of budget.
        key: String,
        /// How far the search got.
        reason: String,
    },
}

/// A key whose history no single register could have produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: String,
    /// A human-readable account: the longest linearizable prefix found (as a list of ops)
    /// and the operations none of which could be placed next, with their times and clients.
    pub explanation: String,
}

/// What [`check`] looked at and what it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Distinct keys in the history.
    pub keys: usize,
    /// Operations in the history.
    pub operations: usize,
    /// The outcome.
    pub verdict: Verdict,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, explanation) = (&self.key, &self.explanation);
        write!(f, "linearizability violation on key {key:?}: {explanation}")
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => f.write_str("the history is linearizable"),
            Verdict::Violation(v) => v.fmt(f),
            Verdict::Unknown { key, reason } => {
                write!(f, "linearizability of key {key:?} is undecided: {reason}")
            }
        }
    }
}

/// Checks every key's history; stops at the first violation. `budget` bounds the search
/// time per key (then `Unknown` for that key, naming it), so a pathological history cannot
/// hang a test. Keys are checked in order; a key that runs out of budget does not stop the
/// others, since a later violation is the more useful verdict. The memoization cache grows
/// with the search, so budgets should stay in seconds.
pub fn check(ops: &[Operation], budget: Duration) -> Report {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        by_key.entry(op.key.as_str()).or_default().push(i);
    }
    let mut verdict = Verdict::Linearizable;
    for (key, ids) in &by_key {
        match check_key(key, ops, ids, budget) {
            found @ Verdict::Violation(_) => {
                verdict = found;
                break;
            }
            found @ Verdict::Unknown { .. } if verdict == Verdict::Linearizable => verdict = found,
            _ => {}
        }
    }
    Report {
        keys: by_key.len(),
        operations: ops.len(),
        verdict,
    }
}

/// One key's register: absent, or a value and its mod_index, which is unknown when the
/// write that produced it lost its answer.
type Reg = Option<(u64, Option<u64>)>;

/// Why `op` cannot have been recorded by a working client, if it cannot: the model has no
/// meaning for such a record, so it is reported rather than searched.
fn malformed(op: &Operation) -> Option<&'static str> {
    match op.ret {
        Some(ret) if ret < op.call => return Some("it returned before it was called"),
        None if op.output != Output::Unknown => return Some("it has an answer but no return time"),
        _ => {}
    }
    let fits = match op.input {
        Input::Get => matches!(op.output, Output::Unknown | Output::Read(_)),
        Input::Put { .. } | Input::Delete => {
            matches!(op.output, Output::Unknown | Output::Written { .. })
        }
        Input::Cas { .. } => !matches!(op.output, Output::Read(_)),
    };
    (!fits).then_some("this kind of operation cannot give that answer")
}

/// The model's step from one register state: pushes onto `out` every state `op` can leave
/// behind from `s` given its recorded answer; pushes nothing when that answer is impossible.
fn step(s: Reg, op: &Operation, out: &mut Vec<Reg>) {
    match (op.input, op.output) {
        (Input::Get, Output::Unknown) => out.push(s),
        (Input::Get, Output::Read(None)) if s.is_none() => out.push(s),
        (Input::Get, Output::Read(Some((v, m)))) => {
            if matches!(s, Some((sv, mi)) if sv == v && mi.is_none_or(|mi| mi == m)) {
                out.push(Some((v, Some(m))));
            }
        }
        (Input::Put { value }, Output::Written { index }) => out.push(Some((value, Some(index)))),
        (Input::Put { value }, Output::Unknown) => out.push(Some((value, None))),
        (Input::Delete, Output::Written { .. } | Output::Unknown) => out.push(None),
        (Input::Cas { expect, value }, output) => {
            // Whether the comparison can hold; a present key's mod_index is never 0.
            let can_hold = match s {
                None => expect == 0,
                Some((_, Some(m))) => m == expect,
                Some((_, None)) => expect != 0,
            };
            // Whether the comparison can fail, seeing `current`.
            let fails_with = |current| match s {
                None => expect != 0 && current == 0,
                Some((_, Some(m))) => m != expect && m == current,
                Some((_, None)) => current != 0 && current != expect,
            };
            match output {
                Output::Written { index } if can_hold => out.push(Some((value, Some(index)))),
                Output::CasFailed { current } if fails_with(current) => {
                    out.push(s.map(|(v, _)| (v, Some(current))))
                }
                Output::Unknown => {
                    out.push(s);
                    if can_hold {
                        out.push(Some((value, None)));
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// Porcupine's power-set construction for nondeterministic models: the states `op` can
/// leave from any of `states`, sorted and deduplicated so that equal sets are equal cache
/// keys. Empty when `op` cannot come next.
fn step_all(states: &[Reg], op: &Operation) -> Vec<Reg> {
    let mut out = Vec::with_capacity(states.len() + 1);
    states.iter().for_each(|&s| step(s, op, &mut out));
    out.sort_unstable();
    out.dedup();
    out
}

/// The end of a list.
const NIL: usize = usize::MAX;

/// Porcupine's doubly linked list of entries, held in arrays so it needs neither `unsafe`
/// nor reference counting: node 0 is the head sentinel, node `k + 1` the `k`-th entry in
/// time order.
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation (index into the key's operations) each node belongs to.
    op: Vec<usize>,
    is_call: Vec<bool>,
    /// For each operation, the node of its return.
    ret_node: Vec<usize>,
}

impl Entries {
    fn new(ops: &[&Operation]) -> Self {
        let mut order: Vec<(u64, bool, usize)> = (ops.iter().enumerate())
            .flat_map(|(i, op)| [(op.call, false, i), (op.ret.unwrap_or(u64::MAX), true, i)])
            .collect();
        // Calls sort before returns at equal times, as in Porcupine: operations that touch
        // at an instant are concurrent, the conservative reading.
        order.sort_unstable();
        let len = order.len() + 1;
        let mut list = Entries {
            next: (1..=len).map(|k| if k < len { k } else { NIL }).collect(),
            prev: (0..len).map(|k| if k > 0 { k - 1 } else { NIL }).collect(),
            op: vec![NIL; len],
            is_call: vec![false; len],
            ret_node: vec![NIL; ops.len()],
        };
        for (k, &(_, is_return, i)) in order.iter().enumerate() {
            list.op[k + 1] = i;
            list.is_call[k + 1] = !is_return;
            if is_return {
                list.ret_node[i] = k + 1;
            }
        }
        list
    }

    /// Takes a call and its return out of the list (a call is always followed by its return).
    fn lift(&mut self, call: usize) {
        for node in [call, self.ret_node[self.op[call]]] {
            let (p, n) = (self.prev[node], self.next[node]);
            self.next[p] = n;
            if n != NIL {
                self.prev[n] = p;
            }
        }
    }

    /// Undoes [`Entries::lift`]; lifts are undone in reverse order, so the nodes' own links
    /// still say where they belong.
    fn unlift(&mut self, call: usize) {
        for node in [self.ret_node[self.op[call]], call] {
            let (p, n) = (self.prev[node], self.next[node]);
            self.next[p] = node;
            if n != NIL {
                self.prev[n] = node;
            }
        }
    }
}

/// Porcupine's `checkSingle` for the operations `ids`, all on `key`.
fn check_key(key: &str, all: &[Operation], ids: &[usize], budget: Duration) -> Verdict {
    let key = key.to_string();
    let bad = ids.iter().find_map(|&i| Some((i, malformed(&all[i])?)));
    if let Some((i, why)) = bad {
        let explanation = format!("malformed operation ({why}): {}", describe(all, i));
        return Verdict::Violation(Violation { key, explanation });
    }
    let ops: Vec<&Operation> = ids.iter().map(|&i| &all[i]).collect();
    let mut list = Entries::new(&ops);
    let mut linearized = vec![0u64; ops.len().div_ceil(64)];
    let mut cache: HashSet<(Vec<u64>, Vec<Reg>)> = HashSet::new();
    // The linearized calls, each with the state before it, to backtrack to.
    let mut calls: Vec<(usize, Vec<Reg>)> = Vec::new();
    let mut state: Vec<Reg> = vec![None];
    let (mut longest, mut longest_state) = (Vec::new(), state.clone());
    let (start, mut steps) = (Instant::now(), 0u64);
    let mut entry = list.next[0];
    while list.next[0] != NIL {
        steps += 1;
        if steps.is_multiple_of(4096) && start.elapsed() > budget {
            let (n, explored, prefix) = (ops.len(), cache.len(), longest.len());
            let reason = format!(
                "the search budget of {budget:?} ran out after {steps} steps over {n} operations \
                 ({explored} configurations explored, longest linearizable prefix {prefix})"
            );
            return Verdict::Unknown { key, reason };
        }
        let i = list.op[entry];
        if list.is_call[entry] {
            let next_state = step_all(&state, ops[i]);
            if !next_state.is_empty() {
                let mut with = linearized.clone();
                with[i / 64] |= 1 << (i % 64);
                if cache.insert((with, next_state.clone())) {
                    calls.push((entry, std::mem::replace(&mut state, next_state)));
                    linearized[i / 64] |= 1 << (i % 64);
                    list.lift(entry);
                    entry = list.next[0];
                    continue;
                }
            }
            entry = list.next[entry];
        } else {
            // A return whose call is not linearized yet: this prefix cannot be extended.
            if calls.len() > longest.len() {
                longest = calls.iter().map(|&(e, _)| list.op[e]).collect();
                longest_state = state.clone();
            }
            let Some((top, previous)) = calls.pop() else {
                let explanation = explain(all, ids, &list, &longest, &longest_state);
                return Verdict::Violation(Violation { key, explanation });
            };
            state = previous;
            let j = list.op[top];
            linearized[j / 64] &= !(1 << (j % 64));
            list.unlift(top);
            entry = list.next[top];
        }
    }
    Verdict::Linearizable
}

/// How many operations of the longest prefix an explanation lists (the last ones).
const PREFIX_SHOWN: usize = 12;

/// The account of a failed search: the longest linearizable prefix found, the states it
/// can leave, and the operations pending after it (those called before the first return of
/// an operation outside it), none of which can come next. `list` is whole again by now.
fn explain(all: &[Operation], ids: &[usize], list: &Entries, best: &[usize], st: &[Reg]) -> String {
    let mut done = vec![false; ids.len()];
    best.iter().for_each(|&i| done[i] = true);
    let (mut pending, mut node) = (Vec::new(), list.next[0]);
    while node != NIL && (done[list.op[node]] || list.is_call[node]) {
        if !done[list.op[node]] {
            pending.push(list.op[node]);
        }
        node = list.next[node];
    }
    let show = |l: &[usize]| Vec::from_iter(l.iter().map(|&i| describe(all, ids[i])));
    let skipped = best.len().saturating_sub(PREFIX_SHOWN);
    let prefix = match best.len() {
        0 => "is empty".to_string(),
        n if skipped > 0 => format!(
            "has {n} operations, ending: {}",
            show(&best[skipped..]).join("; ")
        ),
        n => format!("has {n} operations: {}", show(best).join("; ")),
    };
    let states = Vec::from_iter(st.iter().map(describe_reg)).join(" or ");
    let (n, p, pending) = (ids.len(), pending.len(), show(&pending).join("; "));
    let mut text = format!(
        "no single register could have produced the key's {n} operations. The longest \
         linearizable prefix found {prefix}. After it the key is {states}. None of the {p} \
         operations pending then can be placed next in a way the rest of the history allows: \
         {pending}."
    );
    // `node` is the first return of an operation outside the prefix.
    let first = (node != NIL).then(|| ids[list.op[node]]);
    if let Some((id, ret)) = first.and_then(|id| Some((id, all[id].ret?))) {
        text += &format!(" One of them must take effect before #{id} returns at {ret} ns.");
    }
    text
}

/// An operation as explanations show it: its index in the history, client, times, and
/// call and answer as the API names them.
fn describe(all: &[Operation], id: usize) -> String {
    let op = &all[id];
    let (client, call, input, output) = (op.client, op.call, op.input, op.output);
    let ret = op
        .ret
        .map_or("no answer".to_string(), |r| format!("returned at {r} ns"));
    format!("#{id} (client {client}, called at {call} ns, {ret}): {input:?} -> {output:?}")
}

/// A register state in words.
fn describe_reg(s: &Reg) -> String {
    match s {
        None => "absent".to_string(),
        Some((v, Some(m))) => format!("value {v} at mod_index {m}"),
        Some((v, None)) => format!("value {v} at an unknown mod_index"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `client [key, default k] call ret|- input output, ...`: input `get`, `put=V`,
    /// `del` or `cas=E>V`; output `?`, `none`, `V@M` (read), `w=I` (written) or `fail=C`.
    fn parse(history: &str) -> Vec<Operation> {
        let num = |t: &str| t.parse::<u64>().expect("a number");
        let parse_op = |text: &str| {
            let mut t: Vec<&str> = text.split_whitespace().collect();
            let key = if t.len() == 6 { t.remove(1) } else { "k" };
            let (name, arg) = t[3].split_once('=').unwrap_or((t[3], ""));
            let (expect, value) = arg.split_once('>').unwrap_or(("0", arg));
            let (expect, value) = (num(expect), value.parse().unwrap_or(0));
            let input = match name {
                "get" => Input::Get,
                "put" => Input::Put { value },
                "del" => Input::Delete,
                _ => Input::Cas { expect, value },
            };
            let output = match (t[4], t[4].split_once('@'), t[4].split_once('=')) {
                ("?", ..) => Output::Unknown,
                ("none", ..) => Output::Read(None),
                (_, Some((v, m)), _) => Output::Read(Some((num(v), num(m)))),
                (_, _, Some(("w", i))) => Output::Written { index: num(i) },
                (_, _, Some((_, c))) => Output::CasFailed { current: num(c) },
                _ => panic!("bad output {}", t[4]),
            };
            let (client, key, call) = (num(t[0]) as usize, key.to_string(), num(t[1]));
            let ret = (t[2] != "-").then(|| num(t[2]));
            Operation {
                client,
                key,
                call,
                ret,
                input,
                output,
            }
        };
        history.split(',').map(parse_op).collect()
    }

    fn verdict(history: &str) -> Verdict {
        check(&parse(history), Duration::from_secs(20)).verdict
    }

    /// Checks each history (after `ok` or `bad`) is linearizable or not, as it says.
    fn expect(cases: &[&str]) {
        for case in cases {
            let (expected, history) = case.split_once(' ').expect("ok or bad");
            let v = verdict(history);
            let linearizable = v == Verdict::Linearizable;
            assert_eq!(linearizable, expected == "ok", "{case}: {v}");
        }
    }

    fn violation(history: &str) -> Violation {
        let Verdict::Violation(v) = verdict(history) else {
            panic!("expected a violation: {history}")
        };
        v
    }

    #[test]
    fn sequential_histories_are_linearizable() {
        let h = "0 0 1 get none, 0 2 3 put=10 w=1, 1 4 5 get 10@1, 1 6 7 cas=1>11 w=2, \
                 0 8 9 cas=1>12 fail=2, 0 10 11 get 11@2, 1 12 13 del w=3, 1 14 15 get none, \
                 0 16 17 cas=0>13 w=4, 0 18 19 get 13@4";
        let report = check(&parse(h), Duration::from_secs(5));
        assert_eq!((report.keys, report.operations), (1, 10));
        assert_eq!(report.verdict, Verdict::Linearizable);
        assert_eq!(check(&[], Duration::ZERO).verdict, Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_completed_write_is_a_violation() {
        let v = violation("0 0 10 put=1 w=1, 1 20 30 get none");
        let read = "#1 (client 1, called at 20 ns, returned at 30 ns): Get -> Read(None)";
        assert!(v.key == "k" && v.explanation.contains(read), "{v}");
        let start = "linearizability violation on key \"k\": ";
        assert!(v.to_string().starts_with(start), "{v}");
    }

    #[test]
    fn lost_acknowledged_write_is_a_violation() {
        let v = violation("0 0 10 put=1 w=1, 1 20 30 put=2 w=2, 2 40 50 get 1@1");
        assert!(v.explanation.contains("#2 (client 2"), "{v}");
        let state = "After it the key is value 2 at mod_index 2";
        assert!(v.explanation.contains(state), "{v}");
    }

    #[test]
    fn concurrent_operations_may_go_either_way() {
        expect(&[
            "ok 0 0 100 put=1 w=1, 1 10 20 get none",
            "ok 0 0 100 put=1 w=1, 1 10 20 get 1@1",
            // Two reads may not disagree with the order they imply...
            "bad 0 0 100 put=1 w=1, 1 10 20 get 1@1, 2 30 40 get none",
            // ... but operations that touch at an instant are concurrent.
            "ok 0 0 100 put=1 w=1, 1 10 20 get 1@1, 2 20 40 get none",
        ]);
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_take_effect() {
        expect(&[
            "ok 0 0 1 put=1 w=1, 1 2 - put=2 ?, 2 50 60 get 2@2",
            "ok 0 0 1 put=1 w=1, 1 2 - put=2 ?, 2 50 60 get 1@1",
            // Once seen, it cannot be undone.
            "bad 0 0 1 put=1 w=1, 1 2 - put=2 ?, 2 50 60 get 2@2, 0 70 80 get 1@1",
            // It cannot take effect before it is called.
            "bad 0 0 1 put=1 w=1, 2 10 20 get 2@2, 1 30 - put=2 ?",
            // With a return time, it takes effect by then if at all.
            "bad 0 0 1 put=1 w=1, 1 2 5 put=2 ?, 2 10 11 get 1@1, 2 12 13 get 2@2",
            "ok 0 0 1 put=1 w=1, 1 2 5 del ?, 2 10 11 get none, 0 3 4 get ?",
        ]);
    }

    #[test]
    fn cas_success_and_failure() {
        expect(&[
            "ok 0 0 1 put=1 w=1, 1 2 10 cas=1>2 w=2, 2 3 11 cas=1>3 fail=2",
            // Two CAS with the same expectation cannot both succeed.
            "bad 0 0 1 put=1 w=1, 1 2 10 cas=1>2 w=2, 2 3 11 cas=1>3 w=3",
            "bad 0 0 1 put=1 w=1, 1 2 3 cas=5>2 fail=7",
            "bad 0 0 1 put=1 w=1, 1 2 3 cas=1>2 fail=1",
            "ok 0 0 1 cas=3>1 fail=0, 0 2 3 cas=0>1 w=1, 1 4 5 get 1@1",
            "bad 0 0 1 put=1 w=1, 0 2 3 cas=0>2 w=2",
            // After a lost put, a CAS reveals the mod_index.
            "ok 0 0 - put=1 ?, 1 5 6 cas=9>2 fail=4, 1 7 8 get 1@4",
            "bad 0 0 - put=1 ?, 1 5 6 cas=9>2 fail=4, 1 7 8 get 1@5",
            "ok 0 0 - put=1 ?, 1 5 6 cas=4>2 w=5, 1 7 8 get 2@5",
            // A CAS with no answer may or may not have applied, but nothing else.
            "ok 0 0 1 put=1 w=1, 1 2 - cas=1>2 ?, 2 10 11 get 1@1",
            "ok 0 0 1 put=1 w=1, 1 2 - cas=1>2 ?, 2 10 11 get 2@2",
            "bad 0 0 1 put=1 w=1, 1 2 - cas=7>2 ?, 2 10 11 get 2@2",
        ]);
    }

    #[test]
    fn delete_then_read() {
        expect(&[
            "ok 0 0 1 put=1 w=1, 0 2 3 del w=2, 1 4 5 get none",
            "bad 0 0 1 put=1 w=1, 0 2 3 del w=2, 1 4 5 get 1@1",
            "bad 0 0 1 put=1 w=1, 0 2 3 del w=2, 1 4 5 cas=1>3 w=3",
        ]);
    }

    #[test]
    fn keys_are_checked_independently() {
        // As one register, the last read would be stale.
        let h = "0 a 0 1 put=1 w=1, 0 b 2 3 put=2 w=2, 1 a 4 5 get 1@1";
        let report = check(&parse(h), Duration::from_secs(5));
        assert_eq!((report.keys, report.operations), (2, 3));
        assert_eq!(report.verdict, Verdict::Linearizable);
        let v = violation("0 a 0 1 put=1 w=1, 0 b 2 3 put=2 w=2, 1 b 4 5 get none");
        assert_eq!(v.key, "b");
    }

    #[test]
    fn malformed_operations_are_violations() {
        for bad in "get w=1|get fail=0|put=1 none|del fail=0|cas=0>1 5@1".split('|') {
            for times in ["0 1", "5 1"] {
                let e = violation(&format!("3 m {times} {bad}")).explanation;
                assert!(e.starts_with("malformed operation ("), "{e}");
                assert!(e.contains("#0 (client 3"), "{e}");
            }
        }
        let v = violation("3 m 0 - get none");
        assert!(v.explanation.contains("answer but no return time"), "{v}");
    }

    #[test]
    fn budget_yields_unknown_instead_of_hanging() {
        let puts: Vec<String> = (0..40).map(|i| format!("{i} {i} - put={i} ?")).collect();
        let mut h = parse(&format!("{}, 40 50 60 get 999@1", puts.join(",")));
        let start = Instant::now();
        match check(&h, Duration::from_millis(200)).verdict {
            Verdict::Unknown { key, reason } => assert!(key == "k" && reason.contains("budget")),
            other => panic!("expected unknown, got {other}"),
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        // A violation on another key is the more useful verdict.
        h.extend(parse("0 z 0 1 get 5@5"));
        let verdict = check(&h, Duration::from_millis(50)).verdict;
        assert!(matches!(verdict, Verdict::Violation(v) if v.key == "z"));
    }

    /// Applies `op` atomically to the simulated registers (keyed by number), as the cluster
    /// should, with `log` the last log index used.
    fn apply(regs: &mut [Option<(u64, u64)>], log: &mut u64, op: &Operation) -> Output {
        let reg = &mut regs[op.key.parse::<usize>().expect("numeric keys")];
        let current = reg.map_or(0, |(_, m)| m);
        match op.input {
            Input::Get => return Output::Read(*reg),
            Input::Cas { expect, .. } if expect != current => return Output::CasFailed { current },
            Input::Put { value } | Input::Cas { value, .. } => *reg = Some((value, *log + 1)),
            Input::Delete => *reg = None,
        }
        *log += 1;
        Output::Written { index: *log }
    }

    /// A linearizable history by construction: every operation takes effect at one instant
    /// inside its interval or, when its answer is lost, at some later instant or never.
    fn simulate(seed: u64, clients: u64, keys: u64, n: usize, lose_pct: u64) -> Vec<Operation> {
        // A std-only xorshift generator, so the histories are reproducible.
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut below = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let (mut regs, mut log, mut t) = (vec![None; keys as usize], 0, 0);
        // Per client: its operation in flight, and whether that took effect yet.
        let mut pending: Vec<Option<(usize, bool)>> = vec![None; clients as usize];
        let (mut h, mut limbo) = (Vec::new(), Vec::new());
        while h.len() < n || pending.iter().any(Option::is_some) {
            t += 1 + below(20);
            if !limbo.is_empty() && below(8) == 0 {
                let i: usize = limbo.swap_remove(below(limbo.len() as u64) as usize);
                if below(2) == 0 {
                    apply(&mut regs, &mut log, &h[i]);
                }
            }
            let c = below(clients) as usize;
            match pending[c] {
                None if h.len() < n => {
                    let (k, value) = (below(keys), h.len() as u64 + 1);
                    let current = regs[k as usize].map_or(0, |r| r.1);
                    let expect = [current, below(log + 1)][below(2) as usize];
                    let input = match below(10) {
                        0..=3 => "get".to_string(),
                        4 | 5 => format!("put={value}"),
                        6 => "del".to_string(),
                        _ => format!("cas={expect}>{value}"),
                    };
                    pending[c] = Some((h.len(), false));
                    h.extend(parse(&format!("{c} {k} {t} - {input} ?")));
                }
                None => {}
                Some((i, false)) if below(100) < lose_pct => {
                    limbo.push(i);
                    pending[c] = None;
                }
                Some((i, false)) => {
                    h[i].output = apply(&mut regs, &mut log, &h[i]);
                    pending[c] = Some((i, true));
                }
                Some((i, true)) => {
                    h[i].ret = (below(100) >= lose_pct).then_some(t);
                    h[i].output = h[i].ret.map_or(Output::Unknown, |_| h[i].output);
                    pending[c] = None;
                }
            }
        }
        h
    }

    #[test]
    fn random_linearizable_histories_pass() {
        for seed in 0..300 {
            let mut h = simulate(seed, 1 + seed % 7, 1 + seed % 3, 150, seed % 4 * 2);
            let verdict = check(&h, Duration::from_secs(20)).verdict;
            assert_eq!(verdict, Verdict::Linearizable, "seed {seed}: {h:?}");
            // Reading a value never written is caught.
            let reads = |op: &&mut Operation| matches!(op.output, Output::Read(Some(_)));
            if let Some(read) = h.iter_mut().find(reads) {
                read.output = Output::Read(Some((0, 1)));
                let verdict = check(&h, Duration::from_secs(20)).verdict;
                assert!(matches!(verdict, Verdict::Violation(_)), "seed {seed}");
            }
        }
    }

    #[test]
    fn large_single_key_history_is_fast() {
        for lose_pct in [0, 1, 3] {
            let h = simulate(7, 8, 1, 2000, lose_pct);
            let (start, report) = (Instant::now(), check(&h, Duration::from_secs(60)));
            eprintln!(
                "2000 ops, 8 clients, {lose_pct}% lost: {:?}",
                start.elapsed()
            );
            assert_eq!(report.verdict, Verdict::Linearizable);
        }
    }
}
