//! Every example program, given bad arguments and bad files, as a user would: it exits 2 on a
//! usage error and 1 on a failed run, says why in one line on stderr, never panics, and leaves
//! every existing file as it was (no temporary file left behind either).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::netns::example;

/// Run `program` in `dir` for at most 30 s (a FIFO that blocked would fail here, not hang).
fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    let mut child = Command::new(example(program))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("LESSON_TIMEOUT", "5")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("{program} {args:?} still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Every entry of `dir` (names, and contents of regular files).
fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let contents = kind.is_file().then(|| std::fs::read(entry.path()).unwrap());
            (entry.file_name().into_string().unwrap(), contents)
        })
        .collect()
}

/// A directory with an input file, a file the programs must not touch, a symlink to the input,
/// a subdirectory and (on Unix) a FIFO.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("in.md"), b"the file to send\n").unwrap();
    std::fs::write(p.join("keep.dat"), b"an existing file that must survive\n").unwrap();
    std::fs::create_dir(p.join("subdir")).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("in.md", p.join("link.md")).unwrap();
        let made = Command::new("mkfifo").arg(p.join("fifo")).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    }
    dir
}

struct Case {
    program: &'static str,
    args: &'static [&'static str],
    /// 2: usage error; 1: failed run.
    code: i32,
    /// Words the error line must contain.
    says: &'static str,
}

const fn case(
    program: &'static str,
    args: &'static [&'static str],
    code: i32,
    says: &'static str,
) -> Case {
    Case {
        program,
        args,
        code,
        says,
    }
}

const CASES: &[Case] = &[
    // loopback: the output is never the input, never touched before success.
    case("loopback", &["in.md", "-o", "in.md"], 1, "it is the input"),
    case(
        "loopback",
        &["in.md", "--svg", "in.md"],
        1,
        "in.md is in.md: a picture would replace it",
    ),
    case(
        "loopback",
        &["in.md", "-o", "keep.dat", "--graph", "keep.dat"],
        1,
        "a picture would replace it",
    ),
    case(
        "loopback",
        &["in.md", "-o", "link.md"],
        1,
        "it is the input",
    ),
    case("loopback", &["subdir", "-o", "keep.dat"], 1, "a directory"),
    case(
        "loopback",
        &["missing", "-o", "keep.dat"],
        1,
        "No such file",
    ),
    case("loopback", &["in.md", "-o", "subdir"], 1, "is a directory"),
    case("loopback", &["in.md", "-o", "nodir/x"], 1, "No such file"),
    case("loopback", &["--bogus"], 2, "--bogus"),
    case("loopback", &["in.md", "other.md"], 2, "unexpected argument"),
    // tap_client: arguments smoltcp would panic on, and a missing device.
    case(
        "tap_client",
        &["--addr", "224.0.0.1/24"],
        2,
        "not a unicast",
    ),
    case(
        "tap_client",
        &["--addr", "255.255.255.255/32"],
        2,
        "not a unicast",
    ),
    case(
        "tap_client",
        &["--addr", "192.168.69.255/24"],
        2,
        "broadcast",
    ),
    case("tap_client", &["--addr", "0.0.0.0/24"], 2, "unspecified"),
    case(
        "tap_client",
        &["--addr", "300.1.2.3/24"],
        2,
        "ADDRESS/PREFIX",
    ),
    case("tap_client", &["--peer", "0.0.0.0"], 2, "unspecified"),
    case("tap_client", &["--peer", "224.0.0.1"], 2, "not a unicast"),
    case(
        "tap_client",
        &["--gateway", "255.255.255.255"],
        2,
        "not a unicast",
    ),
    case("tap_client", &["--tap", "sixteen-bytes-xx"], 2, "1 to 15"),
    case("tap_client", &["--tap", ""], 2, "1 to 15"),
    case(
        "tap_client",
        &["--tap", "../x"],
        2,
        "not a valid interface name",
    ),
    case("tap_client", &["--port", "0"], 2, "0 is not in 1..=65535"),
    case("tap_client", &["--port", "65536"], 2, "65536"),
    case(
        "tap_client",
        &["--local-port", "0"],
        2,
        "0 is not in 1..=65535",
    ),
    case("tap_client", &["--connect-timeout", "0.0000001"], 2, "1 ms"),
    case("tap_client", &["--idle-timeout", "0"], 2, "1 ms"),
    case("tap_client", &["--reply-timeout", "nan"], 2, "1 ms"),
    case("tap_client", &["--reply-timeout", "-1"], 2, "1 ms"),
    case("tap_server", &["--wait", "-1", "in.md"], 2, "1 ms"),
    case("tap_client", &["--drop", "101"], 2, "between 0 and 100"),
    case("tap_client", &["--rate", "0"], 2, "--rate"),
    case(
        "tap_client",
        &["--tap", "nosuchtap0", "-o", "keep.dat"],
        1,
        "no such device",
    ),
    case(
        "tap_client",
        &["--tap", "lo", "-o", "keep.dat"],
        1,
        "not a TUN/TAP device",
    ),
    // tap_server: bad files before any device is opened.
    case("tap_server", &[], 2, "FILE"),
    case(
        "tap_server",
        &["--addr", "300.1.2.3/24", "in.md"],
        2,
        "ADDRESS/PREFIX",
    ),
    case(
        "tap_server",
        &["--port", "0", "in.md"],
        2,
        "0 is not in 1..=65535",
    ),
    case("tap_server", &["--wait", "0.00001", "in.md"], 2, "1 ms"),
    case(
        "tap_server",
        &["missing"],
        1,
        "cannot read missing: No such file",
    ),
    case("tap_server", &["subdir"], 1, "a directory"),
    case("tap_server", &["fifo"], 1, "not a regular file"),
    case(
        "tap_server",
        &["--tap", "nosuchtap0", "in.md"],
        1,
        "no such device",
    ),
    // lesson: usage errors are usage errors.
    case("lesson", &[], 2, "Usage"),
    case(
        "lesson",
        &["client", "127.0.0.1", "0", "keep.dat"],
        2,
        "0 is not in 1..=65535",
    ),
    case(
        "lesson",
        &["client", "nohost", "7891", "keep.dat"],
        2,
        "invalid IP address",
    ),
    case(
        "lesson",
        &["server", "--chunk", "0", "7891", "in.md"],
        2,
        "0 is not in",
    ),
    case("lesson", &["server", "7891"], 2, "FILE"),
    case(
        "lesson",
        &["server", "--bind", "127.0.0.1", "7899", "subdir"],
        1,
        "a directory",
    ),
    case(
        "lesson",
        &["server", "--bind", "127.0.0.1", "7899", "fifo"],
        1,
        "not a regular file",
    ),
    case(
        "lesson",
        &["--timeout", "0", "client", "127.0.0.1", "1", "keep.dat"],
        2,
        "0 is not in",
    ),
    // Nobody listens on port 1: refused, and keep.dat stays as it was.
    case(
        "lesson",
        &["client", "127.0.0.1", "1", "keep.dat"],
        1,
        "refused",
    ),
    // soak and bench.
    case("soak", &["--deadline", "-5"], 2, "-5 is not in"),
    case("soak", &["--seeds", "x"], 2, "--seeds"),
    case(
        "soak",
        &["--seeds", "5", "--seed", "3"],
        2,
        "cannot be used with",
    ),
    case("soak", &["--congestion", "vegas"], 2, "vegas"),
    case(
        "bench",
        &["--one", "foo"],
        2,
        "possible values: ours, theirs",
    ),
    case("bench", &["--bogus"], 2, "--bogus"),
    case(
        "bench",
        &["--one", "ours", "1234"],
        2,
        "give 1500, 9000 or 65535",
    ),
    case(
        "bench",
        &["--one", "theirs", "1500", "maybe"],
        2,
        "possible values: on, off",
    ),
    case("attacks", &["--seed", "0"], 2, "0 is not in 1.."),
    case("attacks", &["--seconds", "x"], 2, "--seconds"),
    // async_tokio: the kernel's TCP, but the same checks before anything is opened.
    case("async_tokio", &["bogus"], 2, "unrecognized subcommand"),
    case("async_tokio", &["server", "7891"], 2, "FILE"),
    case("async_tokio", &["server", "65536", "in.md"], 2, "65536"),
    case(
        "async_tokio",
        &["server", "--bind", "1.2.3", "0", "in.md"],
        2,
        "invalid IP address",
    ),
    case(
        "async_tokio",
        &["client", "127.0.0.1", "0", "keep.dat"],
        2,
        "0 is not in 1..=65535",
    ),
    case(
        "async_tokio",
        &["client", "nohost", "7891", "keep.dat"],
        2,
        "not an IPv4 or IPv6 address",
    ),
    case(
        "async_tokio",
        &["client", "224.0.0.1", "7891", "keep.dat"],
        2,
        "not a unicast",
    ),
    case(
        "async_tokio",
        &["client", "0.0.0.0", "7891", "keep.dat"],
        2,
        "unspecified",
    ),
    case(
        "async_tokio",
        &["client", "--wait", "-1", "127.0.0.1", "7891", "keep.dat"],
        2,
        "1 ms",
    ),
    case(
        "async_tokio",
        &["server", "--bind", "127.0.0.1", "0", "missing"],
        1,
        "cannot read missing: No such file",
    ),
    case(
        "async_tokio",
        &["server", "--bind", "127.0.0.1", "0", "subdir"],
        1,
        "a directory",
    ),
    case(
        "async_tokio",
        &["server", "--bind", "127.0.0.1", "0", "fifo"],
        1,
        "not a regular file",
    ),
    // Nobody listens on port 1: refused before OUT (or OUT.partial) is created.
    case(
        "async_tokio",
        &["client", "127.0.0.1", "1", "keep.dat"],
        1,
        "refused",
    ),
    // embassy_tap: what smoltcp (inside embassy-net) would panic on, refused before any device
    // is opened, and bad files before the device too.
    case(
        "embassy_tap",
        &["serve", "in.md"],
        2,
        "unrecognized subcommand",
    ),
    case("embassy_tap", &["server"], 2, "FILE"),
    case(
        "embassy_tap",
        &["server", "--tap", "sixteen-bytes-xx", "in.md"],
        2,
        "1 to 15",
    ),
    case(
        "embassy_tap",
        &["client", "--addr", "224.0.0.1/24", "keep.dat"],
        2,
        "not a unicast",
    ),
    case(
        "embassy_tap",
        &["client", "--addr", "192.168.69.255/24", "keep.dat"],
        2,
        "broadcast",
    ),
    case(
        "embassy_tap",
        &["client", "--addr", "fe80::1/64", "keep.dat"],
        2,
        "IPv4 only",
    ),
    case(
        "embassy_tap",
        &["client", "--peer", "0.0.0.0", "keep.dat"],
        2,
        "unspecified",
    ),
    case(
        "embassy_tap",
        &["client", "--peer", "255.255.255.255", "keep.dat"],
        2,
        "not a unicast",
    ),
    case(
        "embassy_tap",
        &["client", "--port", "0", "keep.dat"],
        2,
        "0 is not in 1..=65535",
    ),
    case(
        "embassy_tap",
        &["client", "--rx", "0", "keep.dat"],
        2,
        "0 is not in 1..",
    ),
    case(
        "embassy_tap",
        &["client", "--wait", "nan", "keep.dat"],
        2,
        "1 ms",
    ),
    case(
        "embassy_tap",
        &["server", "--handshake", "0.0000001", "in.md"],
        2,
        "1 ms",
    ),
    case(
        "embassy_tap",
        &["server", "--handshake", "0", "in.md"],
        2,
        "1 ms",
    ),
    case(
        "embassy_tap",
        &["server", "missing"],
        1,
        "cannot read missing: No such file",
    ),
    case("embassy_tap", &["server", "subdir"], 1, "a directory"),
    case("embassy_tap", &["server", "fifo"], 1, "not a regular file"),
];

#[test]
fn every_program_refuses_bad_arguments_and_files_in_one_line_and_touches_nothing() {
    let mut failures = Vec::new();
    for case in CASES {
        if !cfg!(unix) && case.args.iter().any(|a| *a == "fifo" || *a == "link.md") {
            continue;
        }
        if !cfg!(target_os = "linux") && case.program.starts_with("tap_") && case.code == 1 {
            continue;
        }
        if !cfg!(target_os = "linux") && case.program == "embassy_tap" {
            continue;
        }
        let dir = fixture();
        let before = snapshot(dir.path());
        let out = run(case.program, case.args, dir.path());
        let after = snapshot(dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut wrong = Vec::new();
        if out.status.code() != Some(case.code) {
            wrong.push(format!("exit {:?}, not {}", out.status.code(), case.code));
        }
        if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
            wrong.push("panicked".into());
        }
        // A failed run: one line. A usage error: clap's one `error:` line, then its hints.
        let error_lines = match case.code {
            1 => lines.len(),
            _ => lines.iter().filter(|l| l.starts_with("error")).count(),
        };
        let usage = case.code == 2 && lines.first().is_some_and(|l| l.starts_with("Usage"));
        if error_lines != 1 && !usage {
            wrong.push(format!("{error_lines} error lines"));
        }
        if !stderr.contains(case.says) {
            wrong.push(format!("does not say {:?}", case.says));
        }
        if before != after {
            wrong.push(format!(
                "the directory changed: {:?} -> {:?}",
                before.keys().collect::<Vec<_>>(),
                after.keys().collect::<Vec<_>>()
            ));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{} {:?}: {}\n  stderr: {stderr}",
                case.program,
                case.args,
                wrong.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_full_disk_is_reported_in_the_os_words_and_nothing_is_kept() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipping: no /dev/full");
        return;
    }
    let dir = fixture();
    let out = run("loopback", &["in.md", "-o", "/dev/full"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot write /dev/full: No space left on device"),
        "{stderr}"
    );
    // What reached the device, not what the client handed to its writing thread.
    assert!(stderr.contains(" after 0 bytes;"), "{stderr}");
    assert!(
        !stderr.contains("reset"),
        "the root cause, not its effect: {stderr}"
    );
}

#[test]
fn loopback_replaces_an_existing_output_only_when_the_copy_is_whole() {
    let dir = fixture();
    let out = run("loopback", &["in.md", "-o", "keep.dat"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.path().join("keep.dat")).unwrap(),
        std::fs::read(dir.path().join("in.md")).unwrap()
    );
    // Nothing else was left behind: no temporary, no partial.
    let names: Vec<String> = snapshot(dir.path()).into_keys().collect();
    assert_eq!(names.len(), 5 - usize::from(!cfg!(unix)) * 2, "{names:?}");
}

#[test]
fn soak_replays_the_largest_seed_and_bench_prints_its_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("soak", &["--seed", &u64::MAX.to_string()], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("seed {} (", u64::MAX)) && stdout.contains("| **all** | 1 |"),
        "one run of that seed: {stdout}"
    );

    let started = Instant::now();
    let out = run("bench", &["--help"], dir.path());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: bench"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "--help runs no benchmark"
    );
}

#[test]
fn help_shows_the_timeouts_the_code_uses() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let defaults = halfclose::Timeouts::DEFAULT;
    for program in ["tap_client", "tap_server"] {
        let out = run(program, &["--help"], dir.path());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{help}");
        for (flag, value) in [
            ("--connect-timeout", defaults.connect),
            ("--idle-timeout", defaults.idle),
            ("--reply-timeout", defaults.reply),
        ] {
            let line = help
                .lines()
                .find(|l| l.contains(flag))
                .unwrap_or_else(|| panic!("{program} --help lists {flag}"));
            let shown = format!("[default: {}]", value.secs());
            assert!(line.contains(&shown), "{program}: {line:?} shows {shown}");
        }
    }
}

/// The README's segment table is the loopback example's `--trace`, as the program prints it
/// now (regenerate it with `cargo run --release --example loopback -- --trace`).
#[test]
fn the_readme_shows_the_trace_loopback_prints() {
    let dir = fixture();
    let out = run("loopback", &["--trace", "-o", "copy"], dir.path());
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let trace: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("Message from client") && !l.contains(" bytes from "))
        .collect();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&trace.join("\n")),
        "README.md's trace differs from what loopback --trace prints:\n{}",
        trace.join("\n")
    );
}

/// The README's picture is the loopback example's `--svg` (and its graph, `--graph`), as the
/// program draws it now. After a change meant to change them, write them with
/// `PICTURES_BLESS=1 cargo test --test programs the_readme_picture` and review the diff;
/// `cargo test -p halfclose-tools --test pictures` checks that they render.
#[test]
fn the_readme_picture_is_the_one_loopback_draws() {
    let dir = fixture();
    let args = ["--svg", "ladder.svg", "--graph", "graph.svg", "-o", "copy"];
    let out = run("loopback", &args, dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pictures = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/pictures");
    for (drawn, golden) in [
        ("ladder.svg", "loopback.svg"),
        ("graph.svg", "loopback-graph.svg"),
    ] {
        let drawn = std::fs::read_to_string(dir.path().join(drawn)).unwrap();
        let golden = Path::new(pictures).join(golden);
        if std::env::var_os("PICTURES_BLESS").is_some() {
            std::fs::write(&golden, &drawn).unwrap();
        }
        assert!(
            std::fs::read_to_string(&golden).is_ok_and(|g| g == drawn),
            "{} differs from what loopback draws now (PICTURES_BLESS=1 writes it)",
            golden.display()
        );
    }
    let ladder = std::fs::read_to_string(Path::new(pictures).join("loopback.svg")).unwrap();
    for words in [
        "SYN-SENT",
        "FIN-WAIT-2",
        "TIME-WAIT",
        "half-close",
        "the reply",
    ] {
        assert!(ladder.contains(words), "the picture shows {words}");
    }
}

/// A picture that cannot be written fails the run in words, and costs no file: the copy is
/// whole and in place, and no partial picture is left behind.
#[test]
fn loopback_keeps_the_copy_when_a_picture_cannot_be_written() {
    let dir = fixture();
    let out = run(
        "loopback",
        &["in.md", "-o", "copy.md", "--svg", "nodir/x.svg"],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write nodir/x.svg: No such file"),
        "{stderr}"
    );
    let copy = std::fs::read(dir.path().join("copy.md")).unwrap();
    assert_eq!(copy, std::fs::read(dir.path().join("in.md")).unwrap());
    assert!(!dir.path().join("nodir").exists());
}

#[test]
fn the_readme_lists_every_option_the_programs_help_shows() {
    // The programs' options are listed in the README and the chapters on TAP and async.
    let readme = ["README.md", "docs/tap.md", "docs/async.md"]
        .map(|doc| {
            std::fs::read_to_string(format!("{}/{doc}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        })
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let mut helps = vec![
        ("loopback", vec!["--help"]),
        ("lesson", vec!["server", "--help"]),
        ("lesson", vec!["client", "--help"]),
        ("async_tokio", vec!["server", "--help"]),
        ("async_tokio", vec!["client", "--help"]),
    ];
    if cfg!(target_os = "linux") {
        helps.push(("tap_client", vec!["--help"]));
        helps.push(("tap_server", vec!["--help"]));
        helps.push(("embassy_tap", vec!["server", "--help"]));
        helps.push(("embassy_tap", vec!["client", "--help"]));
    }
    let mut missing = Vec::new();
    for (program, args) in helps {
        let out = run(program, &args, dir.path());
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        let flags = help
            .split_whitespace()
            .map(|word| word.trim_end_matches(','))
            .filter(|flag| flag.starts_with("--") && flag.len() > 2 && *flag != "--help");
        for flag in flags {
            missing.extend(undocumented(program, flag, &help, &readme));
        }
    }
    assert!(
        missing.is_empty(),
        "the README and docs/{{tap,async}}.md lack: {missing:#?}"
    );
}

/// What the docs lack of `program`'s `flag`, as its `help` shows it: the flag itself, or (on
/// the docs' line for it) the same default.
fn undocumented(program: &str, flag: &str, help: &str, docs: &str) -> Option<String> {
    let default = help
        .lines()
        .find(|l| l.contains(flag))
        .and_then(|l| l.split("[default: ").nth(1))
        .map(|d| d.trim_end_matches(']').to_owned());
    let line = docs.lines().find(|l| {
        l.split_whitespace()
            .any(|w| w.trim_matches(|c| "`,([".contains(c)) == flag)
    });
    match (line, default) {
        (None, _) => Some(format!("{program}: {flag}")),
        (Some(line), Some(default))
            if line.contains("[default:") && !line.contains(&format!("[default: {default}]")) =>
        {
            Some(format!("{program}: {flag} default {default}: {line}"))
        }
        _ => None,
    }
}
