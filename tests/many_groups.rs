//! Many groups per node, with real node processes (`tessera groups-node`, 40 groups each,
//! three nodes on loopback, one QUIC connection per pair, one shared fsync per round):
//! - a node killed with SIGKILL while writes run loses no acknowledged write in any group,
//!   whether it is a node the writes go through or the writer itself;
//! - once every group is quiesced (no heartbeats), killing the node that leads the most
//!   groups still gives every group a new leader on the survivors.

use std::path::Path;
use std::time::Duration;
use tessera_testkit::groups_node::{three_nodes, GroupsNode};

const GROUPS: u64 = 40;
const HEARTBEAT_MS: u64 = 100;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tessera"))
}

/// Asks `node` to read back every acknowledged `GROUP KEY` (strong reads) and checks none
/// is missing.
fn check_acked(node: &mut GroupsNode, acked: &[String], dir: &Path, what: &str) {
    let file = dir.join(format!("acked-{what}.txt"));
    std::fs::write(&file, acked.join("\n")).expect("write the acked list");
    let answer = node
        .command(&format!("check {}", file.display()))
        .expect("check");
    assert_eq!(answer["checked"], acked.len() as u64, "{what}: {answer}");
    assert_eq!(
        answer["missing"], 0,
        "{what}: acknowledged writes lost: {answer}"
    );
    assert_eq!(answer["failed_reads"], 0, "{what}: reads failed: {answer}");
}

fn wait_leaders(node: &mut GroupsNode, not: Option<&str>) {
    let command = match not {
        Some(id) => format!("wait-leaders 120 {id}"),
        None => "wait-leaders 120".to_string(),
    };
    let answer = node.command(&command).expect("wait-leaders");
    assert_eq!(answer["ok"], true, "groups without a leader: {answer}");
}

/// Three nodes of `GROUPS` groups in a fresh directory, every group with a leader.
fn start() -> (tempfile::TempDir, Vec<GroupsNode>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = three_nodes(binary(), dir.path(), GROUPS, HEARTBEAT_MS).expect("start");
    for node in nodes.iter_mut() {
        wait_leaders(node, None);
    }
    (dir, nodes)
}

#[test]
fn sigkill_of_a_node_with_many_groups_loses_no_acknowledged_write() {
    let (dir, mut nodes) = start();

    // 1. Kill node 1 while node 0 writes to every group (through the leaders).
    let victim = nodes.remove(1);
    let victim_spec = victim.spec.clone();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        victim.kill();
    });
    let mut acked = Vec::new();
    nodes[0]
        .send(&format!("write 4 20 0 {GROUPS} all acks"))
        .expect("write");
    let answer = nodes[0]
        .answer(|ack| acked.push(ack.to_string()))
        .expect("write answer");
    killer.join().expect("killer");
    assert!(
        answer["commits"].as_u64().unwrap_or(0) > 0,
        "no write acknowledged: {answer}"
    );
    let peers: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let mut restarted = GroupsNode::start(&victim_spec, &peers).expect("restart node 1");
    wait_leaders(&mut restarted, None);
    check_acked(&mut restarted, &acked, dir.path(), "node-1-killed");
    nodes.insert(1, restarted);

    // 2. Kill the writer itself (node 0) after a few hundred acknowledgements.
    nodes[0]
        .send(&format!("write 30 20 0 {GROUPS} all acks"))
        .expect("write");
    let mut acked_by_writer = Vec::new();
    while acked_by_writer.len() < 300 {
        let line = nodes[0].next_line().expect("an ack");
        let Some(ack) = line.strip_prefix("ack ") else {
            panic!("the write ended before 300 acks: {line}");
        };
        acked_by_writer.push(ack.to_string());
    }
    let writer = nodes.remove(0);
    let writer_spec = writer.spec.clone();
    let writer_id = writer.id().to_string();
    writer.kill();
    for node in nodes.iter_mut() {
        wait_leaders(node, Some(&writer_id));
    }
    check_acked(&mut nodes[1], &acked_by_writer, dir.path(), "writer-killed");
    let peers: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let mut writer = GroupsNode::start(&writer_spec, &peers).expect("restart node 0");
    wait_leaders(&mut writer, None);
    acked.extend(acked_by_writer);
    check_acked(&mut writer, &acked, dir.path(), "writer-restarted");
    writer.quit();
    for node in nodes {
        node.quit();
    }
}

#[test]
fn quiesced_groups_elect_new_leaders_when_the_leaders_node_dies() {
    let (_dir, mut nodes) = start();
    // Idle groups quiesce a few heartbeat intervals after their last entry commits.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let quiet: Vec<u64> = nodes
            .iter_mut()
            .map(|n| {
                n.command("status").expect("status")["quiesced"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .collect();
        if quiet.iter().all(|&q| q == GROUPS) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "groups did not all quiesce: {quiet:?} of {GROUPS}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let led: Vec<u64> = nodes
        .iter_mut()
        .map(|n| {
            n.command("status").expect("status")["led"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    let (busiest, &most) = led
        .iter()
        .enumerate()
        .max_by_key(|(_, &l)| l)
        .expect("three nodes");
    assert!(most > 0, "no node leads any group: {led:?}");
    let victim = nodes.remove(busiest);
    let victim_id = victim.id().to_string();
    victim.kill();
    for node in nodes.iter_mut() {
        wait_leaders(node, Some(&victim_id));
    }
    // And the groups take writes again.
    let answer = nodes[0]
        .command(&format!("write 1 {GROUPS} 0 {GROUPS} all quiet"))
        .expect("write");
    assert!(
        answer["commits"].as_u64().unwrap_or(0) >= GROUPS,
        "writes after the failover: {answer}"
    );
    for node in nodes {
        node.quit();
    }
}
