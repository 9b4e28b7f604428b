//! The planner's tests: scheduling, failures, resume, against an in-memory chunk store.

use super::*;
use crate::key::{Cursor, GroupId};
use crate::store::{MemChunkStore, StoreSink};
use crate::writer::{SnapshotWriter, WriterConfig};

/// A 10-chunk snapshot (1 KiB chunks of incompressible-ish bytes) in a source store.
fn source() -> (MemChunkStore, Manifest) {
    let group = GroupId([1; 32]);
    let anchor = Cursor { term: 2, index: 3 };
    let mut src = MemChunkStore::new();
    let sink = StoreSink::new(&mut src, SnapshotKey::new(group, 3));
    let mut w = SnapshotWriter::new(
        group,
        anchor,
        WriterConfig {
            chunk_size: 1024,
            level: 1,
        },
        sink,
    )
    .unwrap();
    let mut x = 1u32;
    let item: Vec<u8> = (0..10 * 1024 - 2)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    w.push(&item).unwrap();
    let (m, _) = w.finish().unwrap();
    assert_eq!(m.chunk_count(), 10);
    (src, m)
}

fn config() -> TransferConfig {
    TransferConfig {
        max_chunks_per_request: 2,
        max_in_flight_per_peer: 2,
        max_in_flight: 5,
        request_timeout_ms: 100,
        max_peer_failures: 2,
        rate_window_ms: 1000,
    }
}

fn chunk(src: &MemChunkStore, m: &Manifest, c: u32) -> Vec<u8> {
    let mut buf = Vec::new();
    assert!(src.read_chunk(m.key(), c, &mut buf).unwrap());
    buf
}

fn plan(reqs: &[ChunkRequest<&'static str>]) -> Vec<(&'static str, Range<u32>)> {
    reqs.iter().map(|r| (r.peer, r.chunks.clone())).collect()
}

fn transfer() -> (
    MemChunkStore,
    Manifest,
    MemChunkStore,
    Transfer<&'static str>,
) {
    let (src, m) = source();
    let mut store = MemChunkStore::new();
    let mut t = Transfer::start(&mut store, m.clone(), config(), 0).unwrap();
    t.add_peer("a", true);
    t.add_peer("b", false);
    t.add_peer("c", false);
    (src, m, store, t)
}

#[test]
fn first_plan_prefers_followers_and_respects_every_bound() {
    let (_, m, _, mut t) = transfer();
    let reqs = t.poll(0);
    assert_eq!(plan(&reqs), vec![("b", 0..2), ("c", 2..4), ("a", 4..5)]);
    let bytes: u64 = m.chunks()[..2]
        .iter()
        .map(|c| u64::from(c.compressed_len))
        .sum();
    assert_eq!(reqs[0].bytes, bytes);
    assert!(t.poll(1).is_empty(), "total in flight is at its bound");
    assert_eq!(t.progress(1).chunks_in_flight, 5);
}

#[test]
fn an_arrival_frees_room_for_the_next_range() {
    let (src, m, mut store, mut t) = transfer();
    t.poll(0);
    let out = t
        .on_chunk(&mut store, &"b", 0, &chunk(&src, &m, 0), 10)
        .unwrap();
    assert!(matches!(out, ChunkOutcome::Verified));
    assert_eq!(plan(&t.poll(10)), vec![("b", 5..6)]);
    assert_eq!(store.received_chunks(m.key()).unwrap(), vec![0]);
}

#[test]
fn a_corrupt_chunk_is_asked_again_from_someone_else() {
    let (src, m, mut store, mut t) = transfer();
    t.poll(0);
    let mut bad = chunk(&src, &m, 2);
    bad[0] ^= 1;
    match t.on_chunk(&mut store, &"c", 2, &bad, 10).unwrap() {
        ChunkOutcome::Rejected(SnapshotError::ChunkCrc { chunk: 2, .. }) => {}
        o => panic!("{o:?}"),
    }
    // c is suspended; chunk 2 goes to the leader, which has room, not back to c.
    assert_eq!(plan(&t.poll(10)), vec![("a", 2..3)]);
}

#[test]
fn timed_out_requests_are_reassigned_and_repeat_offenders_dropped() {
    let (src, m, mut store, mut t) = transfer();
    t.poll(0);
    // b answers in time; c and a never do.
    for c in 0..2 {
        t.on_chunk(&mut store, &"b", c, &chunk(&src, &m, c), 50)
            .unwrap();
    }
    let reqs = t.poll(50);
    assert_eq!(plan(&reqs), vec![("b", 5..7)]);
    assert_eq!(t.next_deadline(), Some(100));
    // At 100 the requests to c and a expire: both suspended until 200; b is full.
    assert!(t.poll(100).is_empty());
    assert_eq!(t.unverified_chunks().count(), 8);
    for c in 5..7 {
        t.on_chunk(&mut store, &"b", c, &chunk(&src, &m, c), 120)
            .unwrap();
    }
    assert_eq!(plan(&t.poll(120)), vec![("b", 2..4)]);
    // c and a come back at 200, time out again at 300 and are dropped (limit 2).
    // c is a follower, so it is served first, one range at a time (4 and 7 are not adjacent).
    assert_eq!(
        plan(&t.poll(200)),
        vec![("c", 4..5), ("c", 7..8), ("a", 8..9)]
    );
    // At 300 b's request (due 220) has expired too: b has one failure and stays.
    t.poll(300);
    assert_eq!(t.peers().copied().collect::<Vec<_>>(), vec!["b"]);
}

#[test]
fn a_late_chunk_from_a_timed_out_peer_is_still_accepted() {
    let (src, m, mut store, mut t) = transfer();
    t.poll(0);
    t.poll(100); // everything expired
    let out = t
        .on_chunk(&mut store, &"c", 3, &chunk(&src, &m, 3), 101)
        .unwrap();
    assert!(matches!(out, ChunkOutcome::Verified));
    assert_eq!(t.progress(101).chunks_verified, 1);
}

#[test]
fn a_vanished_peer_loses_its_ranges() {
    let (_, _, _, mut t) = transfer();
    t.poll(0);
    t.remove_peer(&"c");
    assert_eq!(t.progress(1).chunks_in_flight, 3);
    assert_eq!(plan(&t.poll(1)), vec![("a", 2..3)]);
}

#[test]
fn an_unavailable_chunk_goes_elsewhere_without_penalty() {
    let (src, m, mut store, mut t) = transfer();
    t.poll(0);
    t.on_chunk_unavailable(&"b", 0);
    // b has room again but is not asked for chunk 0.
    assert_eq!(plan(&t.poll(1)), vec![("b", 5..6)]);
    t.on_chunk(&mut store, &"a", 4, &chunk(&src, &m, 4), 2)
        .unwrap();
    assert_eq!(plan(&t.poll(2)), vec![("a", 0..1)]);
    t.on_chunk_unavailable(&"a", 0);
    assert_eq!(plan(&t.poll(3)), vec![("a", 6..7)], "a is not suspended");
    assert_eq!(t.peers().count(), 3);
}

#[test]
fn progress_reports_rate_and_time_left() {
    let (src, m, mut store, mut t) = transfer();
    t.poll(0);
    t.on_chunk(&mut store, &"b", 0, &chunk(&src, &m, 0), 500)
        .unwrap();
    let p = t.progress(1000);
    let c0 = u64::from(m.chunks()[0].compressed_len);
    assert_eq!(
        (p.chunks_verified, p.bytes_verified, p.rate_bytes_per_sec),
        (1, c0, c0)
    );
    let left = m.compressed_bytes() - c0;
    assert_eq!(p.eta_ms, Some((left * 1000).div_ceil(c0)));
    assert_eq!(p.peers, 3);
}

#[test]
fn bad_settings_are_named() {
    let (_, m) = source();
    let config = TransferConfig {
        max_in_flight: 0,
        ..config()
    };
    match Transfer::<u8>::start(&mut MemChunkStore::new(), m, config, 0) {
        Err(SnapshotError::TransferConfig {
            field: "max_in_flight",
            value: 0,
        }) => {}
        r => panic!("{r:?}"),
    }
}

#[test]
fn a_bogus_received_mark_is_named() {
    let (_, m) = source();
    let mut store = MemChunkStore::new();
    store.begin_transfer(m.key(), &m.encode()).unwrap();
    store.put_received_chunk(m.key(), 99, b"x").unwrap();
    match Transfer::<u8>::resume(&store, m.key(), config(), 0) {
        Err(SnapshotError::TransferState {
            chunk: 99,
            count: 10,
            ..
        }) => {}
        r => panic!("{r:?}"),
    }
}
