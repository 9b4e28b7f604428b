//! Where `tessera node`'s settings come from. For each setting, the first of:
//!
//! 1. its flag (`--heartbeat-ms 100`);
//! 2. its environment variable: `TESSERA_` and the flag's name in upper snake case
//!    (`TESSERA_HEARTBEAT_MS=100`; a repeatable flag takes a comma-separated list:
//!    `TESSERA_PEER=ID@IP:PORT,ID@IP:PORT`);
//! 3. the TOML file of `--config FILE` (or `TESSERA_CONFIG`), keys named as the flags
//!    (`heartbeat-ms = 100`, `peer = ["ID@IP:PORT"]`; `_` is taken for `-`);
//! 4. the built-in default.
//!
//! The file's values become the flags' defaults before the command line is parsed, so a
//! value from the file is checked exactly as the flag's (range, address syntax), and an
//! error names the flag. An unknown key, or a value that is not a string, number, boolean
//! or list of them, is refused naming the file and the key.

use clap::Command;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The name of the variable that names the config file.
pub const CONFIG_ENV: &str = "TESSERA_CONFIG";

/// `command` with every `node` flag also read from its `TESSERA_*` variable, and the
/// settings of the config file the arguments (or `TESSERA_CONFIG`) name as defaults.
pub fn layered(command: Command, args: &[OsString]) -> Result<Command, String> {
    let command = command.mut_subcommand("node", with_env);
    if args.get(1).and_then(|a| a.to_str()) != Some("node") {
        return Ok(command);
    }
    let Some(file) = config_file(args) else {
        return Ok(command);
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("config file {}: {e}", file.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("config file {}: {e}", file.display()))?;
    let node = command
        .find_subcommand("node")
        .ok_or("the node command is missing")?
        .clone();
    let mut settings = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = node
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| {
                format!(
                    "config file {}: unknown setting {key:?} (settings are named as the flags of `tessera node --help`)",
                    file.display()
                )
            })?;
        let values = strings(&value).ok_or_else(|| {
            format!(
                "config file {}: setting {key:?} must be a string, a number, a boolean or a list of them",
                file.display()
            )
        })?;
        settings.push((arg.get_id().clone(), values));
    }
    Ok(command.mut_subcommand("node", |mut node| {
        for (id, values) in settings {
            node = node.mut_arg(id, |arg| arg.default_values(values).required(false));
        }
        node
    }))
}

/// Every flag of `node` also from `TESSERA_<FLAG>`, unless it names its own variable.
fn with_env(node: Command) -> Command {
    let longs: Vec<(clap::Id, String)> = node
        .get_arguments()
        .filter(|a| a.get_env().is_none())
        .filter_map(|a| Some((a.get_id().clone(), a.get_long()?.to_string())))
        .filter(|(_, long)| long != "help")
        .collect();
    longs.into_iter().fold(node, |node, (id, long)| {
        let var = format!("TESSERA_{}", long.to_uppercase().replace('-', "_"));
        node.mut_arg(id, |arg| arg.env(var))
    })
}

/// The file `--config FILE` / `--config=FILE` names, else `TESSERA_CONFIG`.
fn config_file(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(2);
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(Path::new(path).to_path_buf());
        }
    }
    std::env::var_os(CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A TOML value as the flag's values.
fn strings(value: &toml::Value) -> Option<Vec<String>> {
    match value {
        toml::Value::String(s) => Some(vec![s.clone()]),
        toml::Value::Integer(i) => Some(vec![i.to_string()]),
        toml::Value::Boolean(b) => Some(vec![b.to_string()]),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| strings(v).filter(|s| s.len() == 1).map(|mut s| s.remove(0)))
            .collect(),
        _ => None,
    }
}
