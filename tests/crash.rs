//! kill -9 at random moments: every position the writer reported durable must survive.
//!
//! A child process (`tessera write-log`) appends synced batches and prints each durable
//! position; the test SIGKILLs it after a random delay, reopens the store, checks every
//! acknowledged entry byte for byte and that the log's end is consistent, then starts the
//! writer again on the same directory. 24 rounds, seeded (the seed is printed) so a failure
//! replays with `TESSERA_CRASH_SEED=<seed>`. In half the rounds the writer flushes the
//! memtables every few hundred entries, so RocksDB switches write-ahead logs and writes
//! into reused ones (the store keeps obsolete log files for reuse): a reused file still
//! holds the records of its former use past the point the writer reached, and recovery
//! must stop where the new records end.

use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use tessera::groups::raft::Payload;
use tessera::groups::{Index, Storage};
use tessera_testkit::write_log::{group_id, payload, term_of};

const ROUNDS: usize = 24;
const PAYLOAD: usize = 256;

#[test]
fn sigkill_never_loses_an_acknowledged_entry() {
    let seed: u64 = std::env::var("TESSERA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("crash test seed {seed} (replay: TESSERA_CRASH_SEED={seed})");
    let mut rng = SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acknowledged_total = 0u64;
    let mut kills_mid_write = 0;
    for round in 0..ROUNDS {
        let batch = [1u64, 4, 16, 64][rng.random_range(0..4)];
        let mut writer = Command::new(env!("CARGO_BIN_EXE_tessera"));
        writer.args(["write-log", "--batch", &batch.to_string()]);
        if round % 2 == 1 {
            let every: u64 = rng.random_range(100..400);
            writer.args(["--flush-every", &every.to_string()]);
        }
        let mut child = writer
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut parts = line.split_whitespace();
                assert_eq!(parts.next(), Some("durable"), "unexpected line {line:?}");
                let index: u64 = parts.next().and_then(|s| s.parse().ok()).expect("index");
                last = Some(index);
            }
            last
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(30..250)));
        let still_running = child.try_wait().expect("try_wait").is_none();
        child.kill().expect("SIGKILL"); // SIGKILL on Unix
        let status = child.wait().expect("wait");
        assert!(
            still_running,
            "writer exited by itself in round {round}: {status}"
        );
        kills_mid_write += 1;
        let acknowledged = reader.join().expect("reader").unwrap_or(0);
        acknowledged_total = acknowledged_total.max(acknowledged);

        // Reopen exactly as a restarted node would.
        let store = tessera_storage::Store::open(dir.path()).expect("reopen store");
        let log = store
            .group_log(*group_id("write-log").as_bytes())
            .expect("reopen log");
        let last = log.last();
        assert!(
            last.index().0 >= acknowledged_total,
            "round {round} (seed {seed}): log ends at {last} but {acknowledged_total} was acknowledged"
        );
        assert_eq!(
            *log.available().end(),
            last.index(),
            "available() ends at last()"
        );
        assert_eq!(log.term_at(last.index()).unwrap(), Some(last.term()));
        assert_eq!(
            log.get(last.index().next()).unwrap(),
            None,
            "nothing past last()"
        );
        // An empty log (the writer killed before its first append, as happens when
        // starting it took longer than the delay) ends at term 0.
        let expected_term = match last.index().0 {
            0 => tessera::groups::Term(0),
            i => term_of(i),
        };
        assert_eq!(last.term(), expected_term, "term of the last entry {last}");
        // Every entry, acknowledged or synced just before the kill, is intact.
        let mut next = 1u64;
        while next <= last.index().0 {
            let end = (next + 8191).min(last.index().0);
            let entries = log
                .get_range(&(Index(next)..=Index(end)))
                .expect("read range");
            assert_eq!(
                entries.len() as u64,
                end - next + 1,
                "gap in {next}..={end}"
            );
            for entry in entries {
                let i = entry.index.0;
                assert_eq!(entry.term, term_of(i), "term of entry {i}");
                assert!(
                    entry.payload == Payload::Command(payload(i, PAYLOAD)),
                    "entry {i} damaged (round {round}, seed {seed})"
                );
            }
            next = end + 1;
        }
    }
    assert_eq!(kills_mid_write, ROUNDS);
    assert!(
        acknowledged_total > 0,
        "the writer never acknowledged anything"
    );
    // RocksDB logs each reuse in its LOG (renamed LOG.old.* at every open).
    let mut reused = 0;
    for file in std::fs::read_dir(dir.path()).expect("list the directory") {
        let path = file.expect("directory entry").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("LOG"))
        {
            let text = std::fs::read_to_string(&path).expect("read a RocksDB LOG");
            reused += text.matches("from recycle list").count();
        }
    }
    assert!(
        reused > 0,
        "no write-ahead log file was reused: the flushing rounds did not test reuse"
    );
    println!(
        "{ROUNDS} SIGKILLs, {acknowledged_total} entries acknowledged, all intact; {reused} log files reused"
    );
}
