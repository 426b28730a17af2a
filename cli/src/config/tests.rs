//! Flag > environment > file > default, and the errors a bad file gets.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::{ConfigError, ParseError, Setup, try_parse_from};

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// A global option.
    #[arg(long, global = true, default_value = "text")]
    log_format: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    Serve(Serve),
    Other {
        /// Not configured.
        #[arg(long, default_value_t = 1)]
        level: u32,
    },
}

#[derive(Args, Debug)]
struct Serve {
    /// Required.
    #[arg(long)]
    id: u32,
    #[arg(long, default_value_t = 100, value_parser = crate::duration_ms_in(1, 60_000))]
    heartbeat_ms: u64,
    #[arg(long = "peer")]
    peers: Vec<String>,
    #[arg(long)]
    verbose: bool,
    /// Named so that its variable is `PATH` (the prefix is empty), which every test
    /// process has: the environment can be tested without changing it.
    #[arg(long, default_value = "default")]
    path: String,
}

const SETUP: Setup = Setup {
    env_prefix: "TEST_CLI_",
    subcommands: &[("serve", "")],
};

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("write");
    file
}

fn parse(args: &[&str]) -> Result<Cli, ParseError> {
    try_parse_from::<Cli>(&SETUP, std::iter::once("bin").chain(args.iter().copied()))
}

fn serve(args: &[&str]) -> (Serve, String) {
    match parse(args) {
        Ok(Cli {
            command: Command::Serve(serve),
            log_format,
        }) => (serve, log_format),
        other => panic!("expected serve, got {other:?}"),
    }
}

fn config_error(file: &tempfile::NamedTempFile) -> ConfigError {
    let path = file.path().to_str().expect("utf-8 path");
    match parse(&["serve", "--config", path]) {
        Err(ParseError::Config(error)) => error,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn file_fills_what_flags_leave_and_flags_win() {
    let file = config_file(
        "id = 7\nheartbeat-ms = \"2s\"\npeer = [\"a\", \"b\"]\nverbose = true\nlog-format = \"json\"\n",
    );
    let path = file.path().to_str().expect("utf-8 path");
    let (from_file, log_format) = serve(&["serve", "--config", path]);
    assert_eq!(from_file.id, 7, "a required option may come from the file");
    assert_eq!(from_file.heartbeat_ms, 2_000);
    assert_eq!(from_file.peers, ["a", "b"]);
    assert!(from_file.verbose);
    assert_eq!(log_format, "json", "global options may come from the file");

    let (flagged, log_format) = serve(&[
        "--log-format",
        "text",
        "serve",
        "--config",
        path,
        "--id",
        "8",
        "--heartbeat-ms",
        "50",
        "--peer",
        "c",
    ]);
    assert_eq!(
        (flagged.id, flagged.heartbeat_ms, flagged.peers),
        (8, 50, vec!["c".to_string()])
    );
    assert_eq!(log_format, "text");

    let (defaults, _) = serve(&["serve", "--id", "1"]);
    assert_eq!(defaults.heartbeat_ms, 100);
    assert!(defaults.peers.is_empty() && !defaults.verbose);
}

#[test]
fn environment_wins_over_the_file_and_loses_to_the_flag() {
    let env_path = std::env::var("PATH").expect("test processes have PATH");
    let file = config_file("id = 1\npath = \"from-file\"\n");
    let path = file.path().to_str().expect("utf-8 path");
    assert_eq!(serve(&["serve", "--config", path]).0.path, env_path);
    assert_eq!(
        serve(&["serve", "--config", path, "--path", "flag"]).0.path,
        "flag"
    );
}

#[test]
fn snake_case_keys_are_accepted() {
    let file = config_file("id = 1\nheartbeat_ms = 250\n");
    let path = file.path().to_str().expect("utf-8 path");
    assert_eq!(serve(&["serve", "--config", path]).0.heartbeat_ms, 250);
}

#[test]
fn unknown_keys_are_refused_with_file_line_and_key() {
    let file = config_file("id = 1\n\nheartbeat = 5\n");
    let error = config_error(&file).to_string();
    let expected = format!(
        "config file {}, line 3: unknown key 'heartbeat' for `serve` (known: id, heartbeat-ms, peer, verbose, path, log-format)",
        file.path().display()
    );
    assert_eq!(error, expected);
}

#[test]
fn bad_values_are_refused_by_the_options_own_parser() {
    let file = config_file("id = 1\nheartbeat-ms = \"61s\"\n");
    let error = config_error(&file).to_string();
    assert!(
        error.contains(", line 2: heartbeat-ms: invalid value '61s'"),
        "{error}"
    );
    assert!(error.contains("1m 1s is outside 1ms to 1m"), "{error}");

    let file = config_file("id = -1\n");
    let error = config_error(&file).to_string();
    assert!(error.contains("line 1: id: invalid value '-1'"), "{error}");

    let file = config_file("id = [1, 2]\n");
    assert!(
        config_error(&file)
            .to_string()
            .ends_with("id: takes one value, not a list")
    );
    let file = config_file("id = 1\nverbose = \"yes\"\n");
    assert!(
        config_error(&file)
            .to_string()
            .ends_with("verbose: expected true or false")
    );
    let file = config_file("id = 1\n[serve]\nid = 2\n");
    assert!(
        config_error(&file)
            .to_string()
            .contains("unknown key 'serve'")
    );
}

#[test]
fn syntax_errors_and_missing_files_name_the_file() {
    let file = config_file("id = \n");
    let error = config_error(&file);
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error}");
    assert!(error.to_string().contains("line 1"), "{error}");

    let missing = PathBuf::from("/nonexistent/serve.toml");
    match parse(&["serve", "--config", "/nonexistent/serve.toml"]) {
        Err(ParseError::Config(ConfigError::Read { path, .. })) => assert_eq!(path, missing),
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn commands_not_configured_take_no_config() {
    match parse(&["other", "--config", "x.toml"]) {
        Err(ParseError::Clap(error)) => {
            assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
        }
        other => panic!("expected a usage error, got {other:?}"),
    }
    assert!(matches!(
        parse(&["other", "--level", "3"]),
        Ok(Cli {
            command: Command::Other { level: 3 },
            ..
        })
    ));
}
