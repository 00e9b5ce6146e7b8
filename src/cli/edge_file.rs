//! `beamd edge --config FILE`: every flag of `beamd edge` is a key of a TOML
//! file, the flag's long name with `_` for `-` (`tcp_ports = "20000-20999"`,
//! `transport = ["quic", "tcp"]`, `no_signup = true`). Each value is checked
//! by its flag's own parser, so the file takes exactly what the command line
//! takes, and an error names the file, line and column. A flag on the
//! command line (or the environment variable a flag names) wins over the
//! file; no other environment variable is read.
//!
//! `--print-config` prints the effective configuration in the same form,
//! each value with where it came from, secrets masked.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::Spanned;

use super::file::{FileError, Secret, Source};

/// Flags that are about the file itself, not keys of it.
const NOT_KEYS: &[&str] = &["config", "print-config", "help"];
/// Flags whose value is a secret: given in the file as `KEY`, `KEY_file` or
/// `KEY_env`, and masked by `--print-config`.
const SECRETS: &[&str] = &["admin-token"];

/// A command line with an edge file's keys in it.
pub struct Merged {
    /// The arguments to parse.
    pub argv: Vec<OsString>,
    /// The long flags whose value came from the file.
    pub from_file: HashSet<String>,
}

/// The command line with the edge file's keys added as flags, for the keys
/// whose flag is not on the command line. Without `edge --config`, `argv`
/// as it is.
pub fn merge(cli: &Command, argv: Vec<OsString>) -> Result<Merged, FileError> {
    let unchanged = |argv| Merged {
        argv,
        from_file: HashSet::new(),
    };
    let Ok(matches) = cli.clone().try_get_matches_from(&argv) else {
        return Ok(unchanged(argv)); // the real parse reports it
    };
    let Some(("edge", edge_matches)) = matches.subcommand() else {
        return Ok(unchanged(argv));
    };
    let Some(path) = edge_matches.get_one::<PathBuf>("config") else {
        return Ok(unchanged(argv));
    };
    let edge = cli.find_subcommand("edge").expect("beamd edge exists");
    let flags = file_flags(edge, edge_matches, path)?;
    let from_file = flags
        .iter()
        .filter_map(|f| {
            let f = f.to_str()?.strip_prefix("--")?;
            Some(f.split('=').next()?.to_string())
        })
        .collect();
    let mut argv = argv;
    argv.extend(flags);
    Ok(Merged { argv, from_file })
}

/// The flags an edge file stands for.
fn file_flags(edge: &Command, given: &ArgMatches, path: &Path) -> Result<Vec<OsString>, FileError> {
    let source = Source::read(path)?;
    let keys: BTreeMap<Spanned<String>, Spanned<toml::Value>> = source.parse()?;
    let on_command_line = |arg: &Arg| {
        matches!(
            given.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let mut flags = Vec::new();
    let mut secrets: BTreeMap<&str, Secret> = BTreeMap::new();
    for (key, value) in keys {
        if key.get_ref().contains('-') {
            let message = format!(
                "unknown key `{}`: keys have _ where flags have -: {}",
                key.get_ref(),
                key.get_ref().replace('-', "_")
            );
            return Err(source.error_at(key.span(), message));
        }
        let long = key.get_ref().replace('_', "-");
        // A secret's other two ways: KEY_file and KEY_env.
        if let Some((secret, way)) = SECRETS.iter().find_map(|s| {
            let way = long.strip_prefix(s)?;
            matches!(way, "" | "-file" | "-env").then_some((*s, way))
        }) {
            let entry = secrets.entry(secret).or_insert(Secret {
                value: None,
                file: None,
                env: None,
            });
            let text = string_of(&source, &value)?;
            let spanned = Spanned::new(value.span(), text);
            match way {
                "" => entry.value = Some(spanned),
                "-file" => {
                    entry.file = Some(Spanned::new(
                        value.span(),
                        PathBuf::from(spanned.into_inner()),
                    ))
                }
                _ => entry.env = Some(spanned),
            }
            continue;
        }
        let arg = edge
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && !NOT_KEYS.contains(&long.as_str()));
        let Some(arg) = arg else {
            let message = format!(
                "unknown key `{}`: the keys are the long flags of `beamd edge --help` with _ for - (and KEY_file or KEY_env for {})",
                key.get_ref(),
                SECRETS.join(", ").replace('-', "_")
            );
            return Err(source.error_at(key.span(), message));
        };
        if on_command_line(arg) {
            continue;
        }
        for v in values_of(&source, arg, &value)? {
            let mut flag = OsString::from(format!("--{long}"));
            if let Some(v) = v {
                flag.push("=");
                flag.push(v);
            }
            flags.push(flag);
        }
    }
    for (secret, ways) in secrets {
        let Some(arg) = edge.get_arguments().find(|a| a.get_long() == Some(secret)) else {
            continue;
        };
        let key = secret.replace('-', "_");
        let value = source.secret(&key, ways)?;
        if let (Some(value), false) = (value, on_command_line(arg)) {
            flags.push(OsString::from(format!("--{secret}={value}")));
        }
    }
    Ok(flags)
}

/// The command-line values one key stands for: `None` for a switch that is on.
fn values_of(
    source: &Source,
    arg: &Arg,
    value: &Spanned<toml::Value>,
) -> Result<Vec<Option<String>>, FileError> {
    let span = value.span();
    let key = arg.get_long().unwrap_or_default().replace('-', "_");
    match arg.get_action() {
        ArgAction::SetTrue => match value.get_ref() {
            toml::Value::Boolean(true) => Ok(vec![None]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            _ => Err(source.error_at(span, format!("{key} is true or false"))),
        },
        ArgAction::Append => {
            let items: Vec<toml::Value> = match value.get_ref() {
                toml::Value::Array(items) => items.clone(),
                one => vec![one.clone()],
            };
            items
                .iter()
                .map(|item| checked(source, arg, &key, item, span.clone()).map(Some))
                .collect()
        }
        _ => {
            if let toml::Value::Array(_) = value.get_ref() {
                return Err(source.error_at(span, format!("{key} takes one value, not a list")));
            }
            Ok(vec![Some(checked(
                source,
                arg,
                &key,
                value.get_ref(),
                span,
            )?)])
        }
    }
}

/// One value as its flag's text, checked by the flag's parser.
fn checked(
    source: &Source,
    arg: &Arg,
    key: &str,
    value: &toml::Value,
    span: std::ops::Range<usize>,
) -> Result<String, FileError> {
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        other => {
            let message = format!("{key} takes a string or a number, not {}", other.type_str());
            return Err(source.error_at(span, message));
        }
    };
    // The flag alone, without its ties to other flags, parses the value.
    let alone = arg
        .clone()
        .requires(clap::builder::Resettable::Reset)
        .conflicts_with(clap::builder::Resettable::Reset)
        .env(None);
    let probe = Command::new("beamd edge").no_binary_name(true).arg(alone);
    let flag = format!("--{}={text}", arg.get_long().unwrap_or_default());
    if let Err(e) = probe.try_get_matches_from([flag]) {
        // clap's message, up to its blank line, on one line.
        let why = e.to_string();
        let why: Vec<&str> = why
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect();
        let why = why.join(" ");
        let why = why.strip_prefix("error: ").unwrap_or(&why);
        return Err(source.error_at(span, format!("{key}: {why}")));
    }
    Ok(text)
}

fn string_of(source: &Source, value: &Spanned<toml::Value>) -> Result<String, FileError> {
    match value.get_ref() {
        toml::Value::String(s) => Ok(s.clone()),
        other => Err(source.error_at(
            value.span(),
            format!("expected a string, not {}", other.type_str()),
        )),
    }
}

/// The flags a reload may change while the edge runs; each is read on every
/// use (or, for `tokens`, the file is imported again).
pub const LIVE: &[&str] = &[
    "tokens",
    "egress-allow",
    "mask-header",
    "max-tenant-connections",
    "min-free-disk-mib",
    "upstream-timeout-secs",
    "header-timeout-secs",
    "trusted-proxy",
];

/// The keys of the flags that differ between two parses of `beamd edge`
/// and cannot change while it runs.
pub fn fixed_changes(cli: &Command, running: &ArgMatches, read: &ArgMatches) -> Vec<String> {
    let Some(edge) = cli.find_subcommand("edge") else {
        return vec!["the command".into()];
    };
    let (Some(running), Some(read)) = (
        running.subcommand_matches("edge"),
        read.subcommand_matches("edge"),
    ) else {
        return vec!["the command".into()];
    };
    let raw = |m: &ArgMatches, id: &str| -> Vec<OsString> {
        m.get_raw(id)
            .map(|v| v.map(OsString::from).collect())
            .unwrap_or_default()
    };
    let mut changed = Vec::new();
    for arg in edge.get_arguments() {
        let (id, Some(long)) = (arg.get_id().as_str(), arg.get_long()) else {
            continue;
        };
        if NOT_KEYS.contains(&long) || LIVE.contains(&long) {
            continue;
        }
        if raw(running, id) != raw(read, id) {
            changed.push(long.replace('-', "_"));
        }
    }
    changed
}

/// The effective configuration of `beamd edge` as a file, each key with
/// where its value came from; secrets are masked.
pub fn print_config(edge: &Command, matches: &ArgMatches, from_file: &HashSet<String>) -> String {
    let mut out = String::from(
        "# beamd edge: the effective configuration (command line over --config file over defaults)\n",
    );
    for arg in edge.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if NOT_KEYS.contains(&long) {
            continue;
        }
        let id = arg.get_id().as_str();
        let key = long.replace('-', "_");
        let came = match matches.value_source(id) {
            Some(ValueSource::CommandLine) if from_file.contains(long) => "file",
            Some(ValueSource::CommandLine) => "command line",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) => "default",
            _ => "not set",
        };
        if SECRETS.contains(&long) {
            let set = matches.value_source(id).is_some();
            let state = if set { "set (masked)" } else { "not set" };
            out.push_str(&format!("# {key}: {state}\n"));
            continue;
        }
        if let ArgAction::SetTrue = arg.get_action() {
            out.push_str(&format!("{key} = {}  # {came}\n", matches.get_flag(id)));
            continue;
        }
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let shown: Vec<String> = values
            .iter()
            .map(|v| toml_value(&without_password(v)))
            .collect();
        match (arg.get_action(), shown.as_slice()) {
            (_, []) => out.push_str(&format!("# {key} is not set\n")),
            (ArgAction::Append, _) => {
                out.push_str(&format!("{key} = [{}]  # {came}\n", shown.join(", ")))
            }
            (_, [one, ..]) => out.push_str(&format!("{key} = {one}  # {came}\n")),
        }
    }
    out
}

/// A URL's password masked (`nats://user:secret@host` → `nats://user:***@host`).
fn without_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let masked: Vec<String> = rest
        .split(',')
        .map(|part| match part.split_once('@') {
            Some((user, host)) => match user.split_once(':') {
                Some((name, _)) => format!("{name}:***@{host}"),
                None => format!("{user}@{host}"),
            },
            None => part.to_string(),
        })
        .collect();
    format!("{scheme}://{}", masked.join(","))
}

/// A flag's text as a TOML value: a number where it is one, else a string.
fn toml_value(text: &str) -> String {
    match text.parse::<i64>() {
        Ok(n) => n.to_string(),
        Err(_) => toml::Value::String(text.to_string()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            without_password("nats://u:pw@a:4222,b:4222"),
            "nats://u:***@a:4222,b:4222"
        );
        assert_eq!(without_password("127.0.0.1:4040"), "127.0.0.1:4040");
    }
}
