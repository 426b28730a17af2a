//! The command lines as a new user meets them: start-up failures that name their cause and
//! create nothing, the exit codes of the README's table, logs without colour codes.
//! Every process is bounded in time and killed if it outlives its test.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use cluster::{Launch, Node, Ran};
use tests::{CLUSTER, binary, free_loopback_addr};

/// A command that should end by itself ends well within this.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

fn run(program: &str, args: &[String]) -> Ran {
    Launch::new(program, binary(program))
        .args(args)
        .env("RUST_LOG", "info")
        .run(RUN_TIMEOUT)
        .expect("start the command")
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| word.to_string()).collect()
}

fn code(ran: &Ran) -> i32 {
    ran.status
        .unwrap_or_else(|| panic!("did not exit within {RUN_TIMEOUT:?}: {ran:?}"))
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {ran:?}"))
}

fn participant_serve(listen: SocketAddr, db: &Path) -> Vec<String> {
    let mut words = args(&["serve", "--id", "1", "--cluster", CLUSTER]);
    words.extend(["--listen".into(), listen.to_string()]);
    words.extend(["--db".into(), db.display().to_string()]);
    words
}

fn coordinator_serve(listen: SocketAddr, db: &Path, participant: SocketAddr) -> Vec<String> {
    let mut words = args(&["serve", "--id", "100", "--cluster", CLUSTER]);
    words.extend(["--listen".into(), listen.to_string()]);
    words.extend(["--db".into(), db.display().to_string()]);
    words.extend(["--participant".into(), format!("1={participant}")]);
    words
}

/// Starts a node that prints `LISTENING`, its stderr to `log`.
fn start(program: &str, args: Vec<String>, log: &Path) -> Node {
    Launch::new(program, binary(program))
        .args(args)
        .env("RUST_LOG", "info")
        .log_to(log)
        .start()
        .unwrap_or_else(|error| panic!("{program} did not start: {error}"))
}

#[test]
fn a_participant_on_a_busy_port_fails_before_creating_its_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let db = dir.path().join("p1.db");
    let ran = run(
        "participant",
        &participant_serve(busy.local_addr().unwrap(), &db),
    );
    assert_eq!(code(&ran), 1, "{ran:?}");
    assert!(ran.stderr.contains("cannot listen on"), "{ran:?}");
    assert!(!db.exists(), "the database was created: {ran:?}");
}

#[test]
fn a_coordinator_on_a_busy_port_fails_before_creating_its_log_or_dialling() {
    let dir = tempfile::tempdir().expect("temp dir");
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    // Stands in for a participant: the coordinator must not connect to it.
    let participant = TcpListener::bind("127.0.0.1:0").expect("bind");
    participant.set_nonblocking(true).expect("nonblocking");
    let db = dir.path().join("coordinator.db");
    let ran = run(
        "coordinator",
        &coordinator_serve(
            busy.local_addr().unwrap(),
            &db,
            participant.local_addr().unwrap(),
        ),
    );
    assert_eq!(code(&ran), 1, "{ran:?}");
    assert!(ran.stderr.contains("cannot listen on"), "{ran:?}");
    assert!(!db.exists(), "the decision log was created: {ran:?}");
    let dialled = participant.accept();
    assert!(
        matches!(&dialled, Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
        "the coordinator dialled a participant: {dialled:?}"
    );
}

#[test]
fn a_database_in_a_missing_directory_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such-dir");
    let ran = run(
        "participant",
        &participant_serve(free_loopback_addr(), &missing.join("p1.db")),
    );
    assert_eq!(code(&ran), 1, "{ran:?}");
    let named = format!("directory {} does not exist", missing.display());
    assert!(ran.stderr.contains(&named), "{ran:?}");
    let ran = run(
        "coordinator",
        &coordinator_serve(
            free_loopback_addr(),
            &missing.join("coordinator.db"),
            free_loopback_addr(),
        ),
    );
    assert_eq!(code(&ran), 1, "{ran:?}");
    assert!(ran.stderr.contains(&named), "{ran:?}");
    assert!(!missing.exists());
}

fn client_args(command: &str, addr: SocketAddr, cluster: &str) -> Vec<String> {
    let mut words = args(&[command, "--cluster", cluster]);
    words.extend(["--addr".into(), addr.to_string()]);
    if command == "submit" {
        words.push("1:get probe".into());
    }
    words
}

#[test]
fn nothing_listening_exits_4_on_every_client_command() {
    let nobody = free_loopback_addr();
    for (program, command) in [
        ("coordinator", "submit"),
        ("coordinator", "status"),
        ("participant", "status"),
    ] {
        let ran = run(program, &client_args(command, nobody, CLUSTER));
        assert_eq!(code(&ran), 4, "{program} {command}: {ran:?}");
        assert!(ran.stderr.contains("cannot reach"), "{ran:?}");
    }
}

#[test]
fn a_wrong_cluster_exits_1_and_a_usage_error_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let participant = start(
        "participant",
        participant_serve(free_loopback_addr(), &dir.path().join("p1.db")),
        &dir.path().join("p1.log"),
    );
    let coordinator = start(
        "coordinator",
        coordinator_serve(
            free_loopback_addr(),
            &dir.path().join("coordinator.db"),
            participant.addr(),
        ),
        &dir.path().join("coordinator.log"),
    );
    for (program, command, addr) in [
        ("coordinator", "submit", coordinator.addr()),
        ("coordinator", "status", coordinator.addr()),
        ("participant", "status", participant.addr()),
    ] {
        let ran = run(program, &client_args(command, addr, "not-this-cluster"));
        assert_eq!(code(&ran), 1, "{program} {command}: {ran:?}");
        assert!(ran.stderr.contains("rejected the connection"), "{ran:?}");
        if command == "status" {
            let ran = run(program, &client_args(command, addr, CLUSTER));
            assert_eq!(code(&ran), 0, "{program} {command}: {ran:?}");
        }
    }
    let mut bad_op = client_args("submit", coordinator.addr(), CLUSTER);
    bad_op.push("1:frobnicate x".into());
    let ran = run("coordinator", &bad_op);
    assert_eq!(code(&ran), 2, "{ran:?}");
}

#[test]
fn logs_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let participant_log = dir.path().join("p1.log");
    let coordinator_log = dir.path().join("coordinator.log");
    let participant = start(
        "participant",
        participant_serve(free_loopback_addr(), &dir.path().join("p1.db")),
        &participant_log,
    );
    let coordinator = start(
        "coordinator",
        coordinator_serve(
            free_loopback_addr(),
            &dir.path().join("coordinator.db"),
            participant.addr(),
        ),
        &coordinator_log,
    );
    drop(coordinator);
    drop(participant);
    for log in [participant_log, coordinator_log] {
        let text = std::fs::read_to_string(&log).expect("read the log");
        assert!(text.contains("INFO"), "{}: {text}", log.display());
        assert!(!text.contains('\u{1b}'), "{}: {text:?}", log.display());
    }
}

#[test]
fn host_names_quoted_text_and_the_coordinator_value_limit_work_end_to_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut serve = args(&["serve", "--id", "1", "--cluster", CLUSTER]);
    serve.extend(["--listen".into(), "localhost:0".into()]);
    serve.extend([
        "--db".into(),
        dir.path().join("p1.db").display().to_string(),
    ]);
    let participant = start("participant", serve, &dir.path().join("p1.log"));
    assert!(
        participant.addr().ip().is_loopback(),
        "{}",
        participant.addr()
    );
    let mut serve = args(&["serve", "--id", "100", "--cluster", CLUSTER]);
    serve.extend(["--listen".into(), "localhost:0".into()]);
    serve.extend(["--db".into(), dir.path().join("c.db").display().to_string()]);
    serve.extend([
        "--participant".into(),
        format!("1=localhost:{}", participant.addr().port()),
    ]);
    serve.extend(["--value-bytes-max".into(), "16".into()]);
    let coordinator = start("coordinator", serve, &dir.path().join("coordinator.log"));
    let submit = |op: &str| {
        let mut words = args(&["submit", "--cluster", CLUSTER, "--timeout-ms", "3000"]);
        words.extend([
            "--addr".into(),
            format!("localhost:{}", coordinator.addr().port()),
        ]);
        words.push(op.into());
        run("coordinator", &words)
    };
    // The coordinator dials the participant in the background: retry until it is up.
    let deadline = std::time::Instant::now() + tests::CONVERGE_TIMEOUT;
    loop {
        let ran = submit("1:put zip \"007\"");
        if code(&ran) == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ran:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ran = submit("1:get zip");
    assert_eq!(code(&ran), 0, "{ran:?}");
    assert!(ran.stdout.contains("1:zip = \"007\""), "{ran:?}");
    let ran = submit("1:put big 12345678901234567890");
    assert_eq!(code(&ran), 2, "a number past 64 bits is refused: {ran:?}");
    let ran = submit("1:put big \"12345678901234567890\"");
    assert_eq!(code(&ran), 1, "20 bytes of text are over 16: {ran:?}");
    assert!(ran.stdout.contains("rejected"), "{ran:?}");
    let mut status = args(&["status", "--cluster", CLUSTER]);
    status.extend([
        "--addr".into(),
        format!("localhost:{}", participant.addr().port()),
    ]);
    let ran = run("participant", &status);
    assert_eq!(code(&ran), 0, "{ran:?}");
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("p1.log");
    let mut serve = participant_serve(free_loopback_addr(), &dir.path().join("p1.db"));
    serve.extend(["--log-format".into(), "json".into()]);
    drop(start("participant", serve, &log));
    let text = std::fs::read_to_string(&log).expect("read the log");
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(object["level"].is_string(), "{line}");
        assert!(object["fields"].is_object(), "{line}");
    }
}

#[test]
fn a_participant_database_given_to_the_coordinator_is_named_as_such() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("p1.db");
    drop(start(
        "participant",
        participant_serve(free_loopback_addr(), &db),
        &dir.path().join("p1.log"),
    ));
    let ran = run(
        "coordinator",
        &coordinator_serve(free_loopback_addr(), &db, free_loopback_addr()),
    );
    assert_eq!(code(&ran), 1, "{ran:?}");
    let named = format!("{} is not a coordinator database", db.display());
    assert!(ran.stderr.contains(&named), "{ran:?}");
}

/// Waits until the log at `path` contains `text`.
fn wait_for_log(path: &Path, text: &str) {
    let deadline = std::time::Instant::now() + tests::CONVERGE_TIMEOUT;
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(text) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never said {text:?}:\n{log}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn secrets_come_from_files_and_a_second_coordinator_with_the_same_id_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("cluster.secret");
    let token = dir.path().join("client.token");
    let wrong = dir.path().join("wrong.secret");
    std::fs::write(&secret, "a-cluster-secret-for-this-test\n").expect("write secret");
    std::fs::write(&token, "a-client-token-for-this-test\n").expect("write token");
    std::fs::write(&wrong, "not-this-clusters-secret-at-all\n").expect("write secret");
    let secured = |mut words: Vec<String>, secret: &Path| {
        words.extend(["--cluster-secret-file".into(), secret.display().to_string()]);
        words.extend(["--client-token-file".into(), token.display().to_string()]);
        words
    };
    let p1_log = dir.path().join("p1.log");
    let participant_addr = free_loopback_addr();
    let serve = participant_serve(participant_addr, &dir.path().join("p1.db"));
    let participant = start("participant", secured(serve, &secret), &p1_log);
    let serve = coordinator_serve(
        "127.0.0.1:0".parse().unwrap(),
        &dir.path().join("c.db"),
        participant.addr(),
    );
    let first_log = dir.path().join("coordinator.log");
    let first = start("coordinator", secured(serve, &secret), &first_log);
    let submit = |with_token: bool| {
        let mut words = args(&["submit", "--cluster", CLUSTER, "--timeout-ms", "3000"]);
        words.extend(["--addr".into(), first.addr().to_string()]);
        if with_token {
            words.extend(["--client-token-file".into(), token.display().to_string()]);
        }
        words.push("1:put k 1".into());
        run("coordinator", &words)
    };
    let deadline = std::time::Instant::now() + tests::CONVERGE_TIMEOUT;
    while code(&submit(true)) != 0 {
        assert!(std::time::Instant::now() < deadline, "never committed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ran = submit(false);
    assert_eq!(code(&ran), 1, "{ran:?}");
    assert!(ran.stderr.contains("requires a client token"), "{ran:?}");

    // The same --id again: refused by the participant, ERROR on both sides.
    let serve = coordinator_serve(
        "127.0.0.1:0".parse().unwrap(),
        &dir.path().join("c2.db"),
        participant.addr(),
    );
    let second_log = dir.path().join("coordinator-2.log");
    let _second = start("coordinator", secured(serve, &secret), &second_log);
    wait_for_log(&second_log, "duplicate node id: Coordinator 100");
    wait_for_log(&p1_log, "ERROR");
    wait_for_log(&p1_log, "second node with a live member's id refused");
    // A coordinator with a wrong secret is refused too.
    let mut serve = coordinator_serve(
        "127.0.0.1:0".parse().unwrap(),
        &dir.path().join("c3.db"),
        participant.addr(),
    );
    serve[2] = "101".into();
    let third_log = dir.path().join("coordinator-3.log");
    let _third = start("coordinator", secured(serve, &wrong), &third_log);
    wait_for_log(&third_log, "authentication failed");
    wait_for_log(&p1_log, "authentication failed");
    // The first coordinator kept its channel throughout.
    let ran = submit(true);
    assert_eq!(code(&ran), 0, "{ran:?}");
    let log = std::fs::read_to_string(&first_log).unwrap_or_default();
    let participant_ups = log.matches("participant up peer=1").count();
    assert_eq!(participant_ups, 1, "{log}");
}
