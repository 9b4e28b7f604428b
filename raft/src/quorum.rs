//! Majority arithmetic, pure: data in, answer out.
//!
//! Quorums are majorities of an explicit voter set (DESIGN.md): learners and abstentions
//! never enter the denominator.

use crate::Index;
use crate::PeerId;
use std::collections::BTreeSet;

/// The outcome of an election so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A majority granted.
    Won,
    /// A majority can no longer be reached.
    Lost,
    /// Undecided.
    Pending,
}

/// The smallest number of voters that is a majority of `voters`.
pub fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The highest index a majority of `voters` has (§5.3, §5.4.2: the leader then checks the
/// entry's term). `acked(peer)` is what each voter is known to hold durably. An empty voter
/// set commits nothing.
pub fn committed_index(voters: &BTreeSet<PeerId>, acked: impl Fn(&PeerId) -> Index) -> Index {
    if voters.is_empty() {
        return Index(0);
    }
    let mut matched: Vec<Index> = voters.iter().map(acked).collect();
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched[majority(voters.len()) - 1]
}

/// The result of an election among `voters` given who granted and who denied; anyone
/// outside `voters` is ignored.
pub fn vote_result(
    voters: &BTreeSet<PeerId>,
    granted: &BTreeSet<PeerId>,
    denied: &BTreeSet<PeerId>,
) -> VoteResult {
    let yes = voters.iter().filter(|v| granted.contains(v)).count();
    let no = voters.iter().filter(|v| denied.contains(v)).count();
    let need = majority(voters.len());
    if voters.is_empty() {
        VoteResult::Lost
    } else if yes >= need {
        VoteResult::Won
    } else if voters.len() - no < need {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

/// Whether the voters in `active` form a majority of `voters` (check-quorum, §6.2).
pub fn has_quorum(voters: &BTreeSet<PeerId>, active: impl Fn(&PeerId) -> bool) -> bool {
    !voters.is_empty() && voters.iter().filter(|v| active(v)).count() >= majority(voters.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn p(n: u8) -> PeerId {
        PeerId([n; 32])
    }

    fn set(ns: &[u8]) -> BTreeSet<PeerId> {
        ns.iter().map(|&n| p(n)).collect()
    }

    #[test]
    fn commit_table() {
        // (matches of voters 1..=n, expected commit)
        let table: &[(&[u64], u64)] = &[
            (&[], 0),
            (&[7], 7),
            (&[5, 3], 3),
            (&[5, 3, 1], 3),
            (&[1, 5, 3], 3),
            (&[9, 9, 1, 1], 1),
            (&[9, 9, 9, 1], 9),
            (&[2, 8, 4, 6, 10], 6),
        ];
        for (matches, want) in table {
            let voters: BTreeSet<PeerId> = (1..=matches.len() as u8).map(p).collect();
            let m: BTreeMap<PeerId, Index> = voters
                .iter()
                .zip(matches.iter())
                .map(|(v, &i)| (*v, Index(i)))
                .collect();
            assert_eq!(
                committed_index(&voters, |v| m[v]),
                Index(*want),
                "{matches:?}"
            );
        }
    }

    #[test]
    fn vote_table() {
        let v = set(&[1, 2, 3]);
        assert_eq!(vote_result(&v, &set(&[1]), &set(&[])), VoteResult::Pending);
        assert_eq!(vote_result(&v, &set(&[1, 2]), &set(&[])), VoteResult::Won);
        assert_eq!(vote_result(&v, &set(&[1]), &set(&[2, 3])), VoteResult::Lost);
        // A learner's grant (4) never counts.
        assert_eq!(
            vote_result(&v, &set(&[1, 4]), &set(&[])),
            VoteResult::Pending
        );
        let four = set(&[1, 2, 3, 4]);
        assert_eq!(
            vote_result(&four, &set(&[1, 2]), &set(&[3])),
            VoteResult::Pending
        );
        assert_eq!(
            vote_result(&four, &set(&[1, 2]), &set(&[3, 4])),
            VoteResult::Lost
        );
        assert_eq!(
            vote_result(&set(&[]), &set(&[]), &set(&[])),
            VoteResult::Lost
        );
    }

    #[test]
    fn quorum_table() {
        let v = set(&[1, 2, 3, 4, 5]);
        assert!(has_quorum(&v, |p| *p <= self::p(3)));
        assert!(!has_quorum(&v, |p| *p <= self::p(2)));
    }

    proptest! {
        /// Against a naive reference: the largest index that at least a majority holds.
        #[test]
        fn commit_matches_naive(matches in proptest::collection::vec(0u64..20, 1..8)) {
            let voters: BTreeSet<PeerId> = (1..=matches.len() as u8).map(p).collect();
            let m: BTreeMap<PeerId, Index> =
                voters.iter().zip(matches.iter()).map(|(v, &i)| (*v, Index(i))).collect();
            let naive = (0..20u64)
                .filter(|&i| matches.iter().filter(|&&x| x >= i).count() > matches.len() / 2)
                .max()
                .unwrap_or(0);
            prop_assert_eq!(committed_index(&voters, |v| m[v]), Index(naive));
        }
    }
}
