//! `tessera member list|add|promote|remove` and `tessera leader transfer`: the group's
//! membership and leadership from the outside (etcdctl's `member` and `move-leader`,
//! over `/v1/members` and `/v1/leader/transfer`).

use crate::kvcli::{connect, fail, ClientArgs, Failure, Format, Out};
use clap::{Args, Subcommand};
use tessera::store::http::MembersAnswer;

/// `tessera member`.
#[derive(Args, Debug)]
pub struct MemberArgs {
    #[command(subcommand)]
    command: MemberCommand,
}

#[derive(Subcommand, Debug)]
enum MemberCommand {
    /// List the members: id, role, addresses, link, last contact and (from the leader)
    /// how far each log matches.
    ///
    /// Example: tessera member list --endpoints http://10.0.0.1:7070
    List {
        /// The answering node's own view instead of the leader's.
        #[arg(long)]
        local: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Add a node as a learner by its ID@HOST:PORT (printed by `tessera node` on its
    /// first line); it is promoted to voter once caught up, unless --observer.
    ///
    /// Example: tessera member add 3f2a…9c@10.0.0.4:7000
    Add {
        /// The new node: ID@IP:PORT.
        peer: String,
        /// A reader that never votes or leads.
        #[arg(long)]
        observer: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Promote a caught-up learner to voter.
    ///
    /// Example: tessera member promote 3f2a
    Promote {
        /// The member's id, or a unique prefix of at least 4 hex digits.
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a member (a dead node before it is replaced; see the README's operations
    /// guide).
    ///
    /// Example: tessera member remove 3f2a
    Remove {
        /// The member's id, or a unique prefix of at least 4 hex digits.
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `tessera leader`.
#[derive(Args, Debug)]
pub struct LeaderArgs {
    #[command(subcommand)]
    command: LeaderCommand,
}

#[derive(Subcommand, Debug)]
enum LeaderCommand {
    /// Hand leadership to another voter (before maintenance of the leader's machine);
    /// prints the new leader once it is elected.
    ///
    /// Example: tessera leader transfer --to 3f2a
    Transfer {
        /// The voter to hand it to (an id or a unique prefix of at least 4 hex digits).
        /// Default: the most caught-up voter.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs one `leader` command.
pub async fn run_leader(args: LeaderArgs, out: &mut Out) -> Result<(), Failure> {
    let LeaderCommand::Transfer { to, format, client } = args.command;
    let answer = connect(&client)?
        .transfer_leader(to.as_deref())
        .await
        .map_err(fail)?;
    match format {
        Format::Json => out.json_pretty(&answer),
        Format::Text => out.line(&format!(
            "leader {} -> {}{}",
            short(&answer.previous),
            short(&answer.leader),
            answer
                .leader_http
                .as_deref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default()
        )),
    }
}

/// Runs one `member` command.
pub async fn run(args: MemberArgs, out: &mut Out) -> Result<(), Failure> {
    let (answer, format) = match args.command {
        MemberCommand::List {
            local,
            format,
            client,
        } => (
            connect(&client)?.members(local).await.map_err(fail)?,
            format,
        ),
        MemberCommand::Add {
            peer,
            observer,
            format,
            client,
        } => (
            connect(&client)?
                .add_member(&peer, observer)
                .await
                .map_err(fail)?,
            format,
        ),
        MemberCommand::Promote { id, format, client } => (
            connect(&client)?.promote_member(&id).await.map_err(fail)?,
            format,
        ),
        MemberCommand::Remove { id, format, client } => (
            connect(&client)?.remove_member(&id).await.map_err(fail)?,
            format,
        ),
    };
    match format {
        Format::Json => out.json_pretty(&answer),
        Format::Text => {
            for line in table(&answer) {
                out.line(&line)?;
            }
            Ok(())
        }
    }
}

/// The member list as aligned text: one header line, one line per member, and a line
/// saying whose view it is (and the change's index after a change).
fn table(answer: &MembersAnswer) -> Vec<String> {
    let header = [
        "ID",
        "ROLE",
        "PEER ADDR",
        "HTTP",
        "ONLINE",
        "LAST SEEN",
        "MATCH",
    ];
    let mut rows: Vec<[String; 7]> = vec![header.map(str::to_string)];
    for m in &answer.members {
        let role = if m.leader {
            format!("{} (leader)", m.role)
        } else {
            m.role.clone()
        };
        rows.push([
            m.id.clone(),
            role,
            m.addr.clone().unwrap_or_else(|| "-".into()),
            m.http.clone().unwrap_or_else(|| "-".into()),
            if m.online { "yes" } else { "no" }.into(),
            match m.last_contact_ms {
                Some(ms) if ms < 1_000 => "now".into(),
                Some(ms) => format!("{:.1} s ago", ms as f64 / 1000.0),
                None => "never".into(),
            },
            m.match_index
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut lines: Vec<String> = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect();
    let view = if answer.from_leader {
        "as the leader sees it".to_string()
    } else {
        format!(
            "as {} sees it (not the leader: no match indexes)",
            short(&answer.answered_by)
        )
    };
    match answer.index {
        Some(index) => lines.push(format!("changed at index {index}; {view}")),
        None => lines.push(view),
    }
    lines
}

fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}
