//! Options from the environment and a TOML file (`--config FILE`) as well as from flags,
//! with flag > environment > file > default, for every option of a configured command, so
//! an option added later is covered without a line here.
//!
//! Every long option of a configured subcommand gets an environment variable (a prefix
//! plus its name in upper snake case: `PARTICIPANT_HEARTBEAT_MS`), and the subcommand gets
//! `--config FILE`. The file's keys are the options' long names (`heartbeat-ms`, or
//! `heartbeat_ms`). Each value is checked by the option's own value parser, so a bad one
//! is named by file, line and key, and then becomes the option's default, which clap uses
//! only when neither the flag nor the variable is given.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command, CommandFactory, FromArgMatches};

/// Which subcommands of a binary take `--config` and environment variables.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// Prefix of the variables of the binary's global options (`--log-format`).
    pub env_prefix: &'static str,
    /// Each configured subcommand and the prefix of its variables.
    pub subcommands: &'static [(&'static str, &'static str)],
}

/// Config files are small; a larger one is a mistake (a database given by accident).
pub const CONFIG_BYTES_MAX: u64 = 1 << 20;

const CONFIG_ID: &str = "config";

#[derive(thiserror::Error, Debug)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {} is larger than {CONFIG_BYTES_MAX} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("config file {}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("config file {}, line {line}: unknown key '{key}' for `{command}` (known: {known})", path.display())]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
        command: String,
        known: String,
    },
    #[error("config file {}, line {line}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// Why the command line (with its environment and config file) was not accepted.
#[derive(Debug)]
pub enum ParseError {
    /// Clap's own: usage errors, and `--help`/`--version` (printed by `exit`).
    Clap(clap::Error),
    Config(ConfigError),
}

/// The binary's command with the environment variables and `--config` of `setup`; what
/// `parse` uses, and what `--help` shows.
pub fn command<P: CommandFactory>(setup: &Setup) -> Command {
    let mut command = P::command().mut_args(|arg| with_env(arg, setup.env_prefix, true));
    for &(name, prefix) in setup.subcommands {
        command = command.mut_subcommand(name, |sub| {
            sub.mut_args(|arg| with_env(arg, prefix, false)).arg(
                Arg::new(CONFIG_ID)
                    .long("config")
                    .value_name("FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .env(format!("{prefix}CONFIG"))
                    .help(
                        "Options from a TOML file: keys are the options' long names (e.g. \
                         `heartbeat-ms = \"100ms\"`, `peer = [\"2=127.0.0.1:7002\"]`). A flag \
                         wins over its environment variable, which wins over the file.",
                    ),
            )
        });
    }
    command
}

/// Parses the process's arguments, environment and config file; prints the error and
/// exits with the usage code (2) on a bad one, as clap does.
pub fn parse<P: CommandFactory + FromArgMatches>(setup: &Setup) -> P {
    match try_parse_from(setup, std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(ParseError::Clap(error)) => error.exit(),
        Err(ParseError::Config(error)) => {
            eprintln!("error: {error}");
            std::process::exit(i32::from(crate::EXIT_USAGE));
        }
    }
}

pub fn try_parse_from<P: CommandFactory + FromArgMatches>(
    setup: &Setup,
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Result<P, ParseError> {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut command = command::<P>(setup);
    if let Some((name, path)) = config_path(&command, &args) {
        let mut built = command.clone();
        built.build();
        let Some(sub) = built.find_subcommand(&name) else {
            return Err(ParseError::Clap(built.error(
                clap::error::ErrorKind::InvalidSubcommand,
                format!("no subcommand {name}"),
            )));
        };
        for (id, global, values) in file_values(&path, sub).map_err(ParseError::Config)? {
            let set = |arg: Arg| arg.default_values(values.clone()).required(false);
            command = if global {
                command.mut_arg(&id, set)
            } else {
                command.mut_subcommand(&name, |sub| sub.mut_arg(&id, set))
            };
        }
    }
    let matches = command
        .try_get_matches_from_mut(&args)
        .map_err(ParseError::Clap)?;
    P::from_arg_matches(&matches).map_err(|error| ParseError::Clap(error.format(&mut command)))
}

/// Gives a long option its environment variable (a list's variable holds comma-separated
/// values), unless it has one; `global` picks the binary's global options only.
fn with_env(arg: Arg, prefix: &str, global: bool) -> Arg {
    let Some(long) = arg.get_long() else {
        return arg;
    };
    if arg.get_env().is_some() || arg.is_global_set() != global {
        return arg;
    }
    let name = format!("{prefix}{}", long.to_uppercase().replace('-', "_"));
    let list = matches!(arg.get_action(), ArgAction::Append);
    let arg = arg.env(name);
    if list && arg.get_value_delimiter().is_none() {
        arg.value_delimiter(',')
    } else {
        arg
    }
}

/// The configured subcommand and its `--config` (flag or variable), from a lenient first
/// parse: the file may supply options the command line lacks.
fn config_path(command: &Command, args: &[OsString]) -> Option<(String, PathBuf)> {
    let matches = command
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()?;
    let (name, sub) = matches.subcommand()?;
    let path = sub.try_get_one::<PathBuf>(CONFIG_ID).ok()??;
    Some((name.to_string(), path.clone()))
}

/// The file's options as (argument id, global?, values), each value checked by its
/// option's parser.
fn file_values(
    path: &Path,
    sub: &Command,
) -> Result<Vec<(String, bool, Vec<String>)>, ConfigError> {
    let text = read_bounded(path)?;
    let table: BTreeMap<toml::Spanned<String>, toml::Spanned<toml::Value>> = toml::from_str(&text)
        .map_err(|error| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: error.to_string().trim_end().to_string(),
        })?;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let mut options = Vec::new();
    for (key, value) in &table {
        let line = line_of(key.span().start);
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            key: key.get_ref().clone(),
            message,
        };
        let Some(arg) = find_option(sub, key.get_ref()) else {
            return Err(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                line,
                key: key.get_ref().clone(),
                command: sub.get_name().to_string(),
                known: options_of(sub).collect::<Vec<_>>().join(", "),
            });
        };
        let values = values_of(arg, value.get_ref()).map_err(invalid)?;
        if arg.get_action().takes_values() {
            check_values(arg, &values).map_err(invalid)?;
        }
        options.push((arg.get_id().to_string(), arg.is_global_set(), values));
    }
    Ok(options)
}

fn read_bounded(path: &Path) -> Result<String, ConfigError> {
    let read = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut text = String::new();
    file.take(CONFIG_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(read)?;
    if text.len() as u64 > CONFIG_BYTES_MAX {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

/// Options a file may set: those with a long name that take a value or are a switch.
fn settable(arg: &Arg) -> bool {
    arg.get_long().is_some()
        && arg.get_id() != CONFIG_ID
        && (arg.get_action().takes_values()
            || matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse))
}

fn options_of(sub: &Command) -> impl Iterator<Item = &str> {
    sub.get_arguments()
        .filter(|arg| settable(arg))
        .filter_map(Arg::get_long)
}

fn find_option<'a>(sub: &'a Command, key: &str) -> Option<&'a Arg> {
    let long = key.replace('_', "-");
    sub.get_arguments()
        .find(|arg| settable(arg) && arg.get_long() == Some(long.as_str()))
}

/// A TOML value as the option's command-line texts: a list only for a repeatable option,
/// a boolean only for a switch.
fn values_of(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    let scalar = |value: &toml::Value| match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(number) => Ok(number.to_string()),
        toml::Value::Float(number) => Ok(number.to_string()),
        toml::Value::Boolean(flag) => Ok(flag.to_string()),
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => {
            Err("expected a string, a number or a boolean".to_string())
        }
    };
    let switch = !arg.get_action().takes_values();
    match value {
        toml::Value::Boolean(_) => {}
        _ if switch => return Err("expected true or false".to_string()),
        _ => {}
    }
    match value {
        toml::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => {
            items.iter().map(scalar).collect()
        }
        toml::Value::Array(_) => Err("takes one value, not a list".to_string()),
        value => Ok(vec![scalar(value)?]),
    }
}

/// Runs the option's own parser (and its checks: ranges, possible values) over the values,
/// as if they had been given as flags.
fn check_values(arg: &Arg, values: &[String]) -> Result<(), String> {
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    let args = values.iter().map(|value| {
        let mut flag = OsString::from(format!("--{long}="));
        flag.push(value);
        flag
    });
    Command::new("config")
        .no_binary_name(true)
        .arg(arg.clone().required(false))
        .try_get_matches_from(args)
        .map(drop)
        .map_err(|error| clap_message(&error))
}

/// The first line of a clap error, without its `error: ` prefix.
fn clap_message(error: &clap::Error) -> String {
    let text = error.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests;
