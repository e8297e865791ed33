//! The `civex` binary: local tools, and `civex demo` serving the example it prints.

#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use civex_proto::v1::AuditRecord;
use prost::Message;

const CIVEX: &str = env!("CARGO_BIN_EXE_civex");

fn civex(dir: &Path, args: &[&str]) -> Output {
    Command::new(CIVEX)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("civex runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn id_check_and_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let ok = civex(dir.path(), &["id", "check", "11010519491231002x"]);
    assert!(ok.status.success());
    assert!(stdout(&ok).contains("11010519491231002X: valid (division 110105, born 1949-12-31, female)"));

    let bad = civex(dir.path(), &["id", "check", "11010519491231002X", "110105194912310021"]);
    assert!(!bad.status.success());
    assert!(stdout(&bad).contains("110105194912310021: invalid: citizen ID check character does not match"));

    let up = civex(dir.path(), &["id", "upgrade", "110105491231002"]);
    assert!(up.status.success());
    assert_eq!(stdout(&up).trim(), "11010519491231002X");
}

#[test]
fn import_is_all_or_nothing_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = civex(
        dir.path(),
        &["demo-data", "--citizens", "200", "--seed", "3", "--out", "files"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tax = std::fs::read_to_string(dir.path().join("files/tax.jsonl")).unwrap();
    let mut lines: Vec<&str> = tax.lines().collect();
    let good = lines.len();
    lines.insert(3, r#"{"citizen_id":"11010519491231002X","tax.registered":"maybe"}"#);
    std::fs::write(dir.path().join("bad.jsonl"), lines.join("\n")).unwrap();

    let refused = civex(dir.path(), &["import", "tax", "bad.jsonl", "--data", "d"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("line 4: tax.registered: expected bool"), "{err}");

    let done = civex(dir.path(), &["import", "tax", "files/tax.jsonl", "--data", "d"]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(
        stdout(&done).contains(&format!("imported {good} tax records")),
        "{}",
        stdout(&done)
    );
}

/// Edits the records of the first entry bundle (`tile/entries/000`, full
/// or partial) of a stopped gateway's log, as someone with the disk could.
fn tamper(data: &Path, edit: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let entries = data.join("log/tile/entries");
    let path = match std::fs::read_dir(entries.join("000.p")) {
        Ok(mut partial) => partial.next().unwrap().unwrap().path(),
        Err(_) => entries.join("000"),
    };
    let bytes = std::fs::read(&path).unwrap();
    let mut leaves = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize;
        leaves.push(bytes[at + 2..at + 2 + len].to_vec());
        at += 2 + len;
    }
    edit(&mut leaves);
    let bytes: Vec<u8> = leaves
        .iter()
        .flat_map(|l| (l.len() as u16).to_be_bytes().into_iter().chain(l.iter().copied()))
        .collect();
    std::fs::write(&path, bytes).unwrap();
}

/// Kills the demo when the test ends, however it ends.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        // SIGKILL: what the demo started must not outlive it even then.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `civex demo` in `dir` on a free port; returns it, its endpoint and
/// the banner it printed (continuation lines joined).
fn start_demo(dir: &Path, args: &[&str]) -> (Demo, String, Vec<String>) {
    let child = Command::new(CIVEX)
        .args(["demo", "--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut demo = Demo(child);
    let mut lines = BufReader::new(demo.0.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut banner = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        assert!(started.elapsed() < Duration::from_secs(120), "demo did not start");
        // The example commands span several lines joined by a trailing backslash.
        let mut line = line.trim().to_owned();
        while line.ends_with('\\') {
            line.pop();
            line.push_str(lines.next().unwrap().unwrap().trim());
        }
        let done = line.starts_with("Stop with");
        banner.push(line);
        if done {
            break;
        }
    }
    let endpoint = banner
        .iter()
        .find_map(|l| l.strip_prefix("civex demo serving on "))
        .expect("the demo prints its endpoint");
    (demo, endpoint.to_owned(), banner)
}

#[test]
fn demo_serves_and_its_printed_example_returns_facts() {
    let dir = tempfile::tempdir().unwrap();
    let (demo, _, banner) = start_demo(dir.path(), &["--citizens", "300"]);
    // Run every printed example in order; each grant's consent feeds the command after it.
    let examples: Vec<Vec<String>> = banner
        .iter()
        .filter_map(|l| l.strip_prefix("cargo run --release --bin civex -- "))
        .map(|args| args.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        examples.iter().map(|e| e[0].as_str()).collect::<Vec<_>>(),
        ["consent", "query", "consent", "check", "audit"]
    );
    let mut consent = String::new();
    let mut outputs = Vec::new();
    for example in examples {
        let args: Vec<String> = example
            .into_iter()
            .map(|a| if a.starts_with('<') { consent.clone() } else { a })
            .filter(|a| !["printed", "above>"].contains(&a.as_str()))
            .collect();
        let out = Command::new(CIVEX)
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = stdout(&out);
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("consent_id: ")) {
            consent = id.to_owned();
        }
        outputs.push(text);
    }
    let first_consent = outputs[0]
        .lines()
        .find_map(|l| l.strip_prefix("consent_id: "))
        .unwrap()
        .to_owned();
    assert!(outputs[1].contains("ps.hukou.division = 53"), "{}", outputs[1]);
    assert!(
        outputs[1].contains("housing.owned_residence.division = "),
        "{}",
        outputs[1]
    );
    assert!(
        outputs[3].starts_with("SATISFIED  (曲政发〔2015〕82号（四）"),
        "{}",
        outputs[3]
    );
    let consent = first_consent;
    drop(demo);

    // Run again on the same directory: the data, consents and keys are kept.
    let key_before = std::fs::read_to_string(dir.path().join("civex-data/gateway.vkey")).unwrap();
    let (mut second, endpoint, text) = start_demo(dir.path(), &[]);
    assert!(
        !text.iter().any(|l| l.starts_with("generating")),
        "data was regenerated: {text:?}"
    );
    let listed = Command::new(CIVEX)
        .args(["consent", "get", "--endpoint", &endpoint, "--consent", &consent])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(stdout(&listed).contains("uses: 1 of unlimited"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("civex-data/gateway.vkey")).unwrap(),
        key_before
    );

    // The audit commands against the running gateway.
    let audit = |args: &[&str]| {
        let mut all = vec!["audit"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--endpoint", &endpoint]);
        let out = civex(dir.path(), &all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    };
    let found = audit(&["search", "--action", "ExchangeService/Query"]);
    assert!(
        found.contains("ExchangeService/Query") && found.contains("ALLOW"),
        "{found}"
    );
    assert!(audit(&["checkpoint"]).starts_with("civex/qujing-demo\n"));
    let verified = audit(&["verify", "--vkey", "civex-data/gateway.vkey"]);
    assert!(verified.contains("audit log OK"), "{verified}");
    let twice = audit(&["verify", "--vkey", "civex-data/gateway.vkey"]);
    assert!(twice.contains("consistent with the saved checkpoint"), "{twice}");

    // A graceful stop writes a final checkpoint; the stopped store verifies offline.
    let status = Command::new("kill")
        .args(["-TERM", &second.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(second.0.wait().unwrap().success(), "SIGTERM exits 0");
    let ok = civex(dir.path(), &["audit", "verify", "--data", "civex-data"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout(&ok).contains("audit log OK"));
    // The search indexes rebuild from the log alone.
    std::fs::remove_dir_all(dir.path().join("civex-data/audit-index")).unwrap();
    let rebuilt = civex(dir.path(), &["audit", "reindex", "--data", "civex-data"]);
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert!(
        stdout(&rebuilt).contains("search indexes rebuilt"),
        "{}",
        stdout(&rebuilt)
    );

    // Alter one record in the store: verify names its index and fails.
    tamper(&dir.path().join("civex-data"), |leaves| {
        let mut record = AuditRecord::decode(leaves[3].as_slice()).unwrap();
        record.agency = "someone-else".into();
        leaves[3] = record.encode_to_vec();
    });
    let bad = civex(dir.path(), &["audit", "verify", "--data", "civex-data"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("record 3 was altered"), "{err}");
    // ... and the gateway refuses to serve from the altered store.
    let refused = civex(dir.path(), &["serve", "--config", "civex-data/civex.toml"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("record 3 was altered"),
        "{err}"
    );

    // Delete another: verify names the gap.
    tamper(&dir.path().join("civex-data"), |leaves| {
        leaves.remove(1);
    });
    let gone = civex(dir.path(), &["audit", "verify", "--data", "civex-data"]);
    let err = String::from_utf8_lossy(&gone.stderr);
    assert!(!gone.status.success() && err.contains("record 1 is missing"), "{err}");
}

#[test]
fn an_administrator_onboards_and_cuts_off_an_agency_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (demo, endpoint, banner) = start_demo(dir.path(), &["--citizens", "300"]);
    let run = |args: &[&str]| {
        let out = Command::new(CIVEX)
            .args(args)
            .args(["--endpoint", &endpoint])
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            stdout(&out),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ok = |args: &[&str]| {
        let (success, out, err) = run(args);
        assert!(success, "{args:?}: {err}");
        out
    };
    // The agency's side: a key that never leaves it, and a CSR.
    let csr = civex(
        dir.path(),
        &["certs", "csr", "--agency", "qujing-newagency", "--dir", "new"],
    );
    assert!(csr.status.success());
    let added = ok(&[
        "agency",
        "add",
        "--code",
        "qujing-newagency",
        "--name",
        "New agency",
        "--department",
        "housing",
        "--role",
        "requester",
        "--right",
        "housing.*=housing.guarantee",
        "--rate",
        "50/100",
    ]);
    assert!(
        added.contains("qujing-newagency") && added.contains("right housing.* for housing.guarantee"),
        "{added}"
    );
    let issued = ok(&[
        "agency",
        "issue-cert",
        "qujing-newagency",
        "--csr",
        "new/qujing-newagency.csr",
        "--out",
        "new/qujing-newagency.pem",
    ]);
    let serial = issued
        .split("serial ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    assert!(ok(&["agency", "list"]).contains("qujing-newagency"));

    let citizen = banner
        .iter()
        .find(|l| l.contains("owns a home"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    let granted = ok(&[
        "consent",
        "grant",
        "--citizen",
        citizen,
        "--grantee",
        "qujing-newagency",
        "--purpose",
        "housing.guarantee",
        "--scope",
        "housing.owned_residence.division",
    ]);
    let consent = granted
        .lines()
        .find_map(|l| l.strip_prefix("consent_id: "))
        .unwrap()
        .to_owned();
    let query = [
        "query",
        "--cert",
        "new/qujing-newagency.pem",
        "--key",
        "new/qujing-newagency.key",
        "--citizen",
        citizen,
        "--purpose",
        "housing.guarantee",
        "--consent",
        &consent,
        "--attribute",
        "housing.owned_residence.division",
    ];
    assert!(ok(&query).contains("housing.owned_residence.division = "));

    // A SIGHUP reloads the certificate; the gateway keeps serving.
    let hup = Command::new("kill")
        .args(["-HUP", &demo.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(ok(&query).contains("housing.owned_residence.division = "));

    ok(&["agency", "suspend", "qujing-newagency", "--reason", "audit finding"]);
    let (success, _, err) = run(&query);
    assert!(!success && err.contains("AGENCY_SUSPENDED"), "{err}");
    ok(&["agency", "reinstate", "qujing-newagency"]);
    ok(&query);
    assert!(ok(&["agency", "revoke-cert", &serial, "--reason", "key lost"]).contains(&format!("revoked {serial}")));
    let (success, _, _) = run(&query);
    assert!(!success, "a revoked certificate still works");
}

#[test]
fn demo_with_remote_departments_serves_them_from_their_own_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (demo, endpoint, banner) = start_demo(dir.path(), &["--citizens", "300", "--remote", "housing,tax"]);
    for department in ["housing", "tax"] {
        assert!(
            banner
                .iter()
                .any(|l| l.starts_with(&format!("{department} served by its own system at https://"))),
            "{banner:?}"
        );
    }
    let citizen = banner
        .iter()
        .find(|l| l.contains("owns a home"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    let scopes = [
        "ps.hukou.division",
        "housing.owned_residence.division",
        "tax.registered",
    ];
    let mut grant = vec![
        "consent",
        "grant",
        "--endpoint",
        &endpoint,
        "--citizen",
        citizen,
        "--grantee",
        "qujing-psb",
    ];
    grant.extend(["--purpose", "hukou.settlement"]);
    for s in &scopes {
        grant.extend(["--scope", s]);
    }
    let out = civex(dir.path(), &grant);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let consent = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("consent_id: ").map(str::to_owned))
        .unwrap();
    let mut query = vec![
        "query",
        "--endpoint",
        &endpoint,
        "--citizen",
        citizen,
        "--purpose",
        "hukou.settlement",
    ];
    query.extend(["--consent", &consent]);
    for s in &scopes {
        query.extend(["--attribute", s]);
    }
    let out = civex(dir.path(), &query);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let facts = stdout(&out);
    assert!(
        facts.contains("housing.owned_residence.division = 53") && facts.contains("[source housing]"),
        "{facts}"
    );
    assert!(
        facts.contains("tax.registered = ") && facts.contains("[source tax]"),
        "{facts}"
    );
    drop(demo);
}

#[test]
fn two_demos_on_one_database_are_one_deployment_and_its_log_verifies_from_the_database() {
    let pg = civex_testpg::TestPostgres::start().unwrap_or_else(|e| panic!("{e}"));
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let (first, one, banner) = start_demo(dir.path(), &["--citizens", "300", "--storage", &url]);
    // The second joins: it finds the registries filled and the keys made.
    let (second, two, text) = start_demo(dir.path(), &["--storage", &url]);
    assert!(
        !text.iter().any(|l| l.starts_with("generating")),
        "the second demo generated data again: {text:?}"
    );
    let citizen = banner
        .iter()
        .find_map(|l| l.strip_prefix("cargo run --release --bin civex -- query "))
        .and_then(|args| args.split_whitespace().skip_while(|a| *a != "--citizen").nth(1))
        .expect("the banner's query example")
        .to_owned();
    let run = |args: &[&str]| {
        let out = civex(dir.path(), args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    };
    let granted = run(&[
        "consent",
        "grant",
        "--endpoint",
        &one,
        "--citizen",
        &citizen,
        "--grantee",
        "qujing-psb",
        "--purpose",
        "hukou.settlement",
        "--scope",
        "ps.hukou.division",
    ]);
    let consent = granted
        .lines()
        .find_map(|l| l.strip_prefix("consent_id: "))
        .expect("a consent id")
        .to_owned();
    let answer = run(&[
        "query",
        "--endpoint",
        &two,
        "--citizen",
        &citizen,
        "--attribute",
        "ps.hukou.division",
        "--purpose",
        "hukou.settlement",
        "--consent",
        &consent,
    ]);
    assert!(answer.contains("ps.hukou.division = 53"), "{answer}");
    let found = run(&[
        "audit",
        "search",
        "--endpoint",
        &one,
        "--action",
        "ExchangeService/Query",
    ]);
    assert!(
        found.contains("ALLOW"),
        "the query on the second is in the log the first reads: {found}"
    );
    drop((first, second));
    for store in ["db", "log", "consents", "audit-index"] {
        assert!(
            !dir.path().join("civex-data").join(store).exists(),
            "a gateway on PostgreSQL keeps no {store} of its own"
        );
    }
    let verified = run(&[
        "audit",
        "verify",
        "--storage",
        &url,
        "--vkey",
        "civex-data/gateway.vkey",
    ]);
    assert!(verified.contains("audit log OK"), "{verified}");
}

/// The README's "Trip an alert", command by command: each rule the demo's
/// thresholds let a newcomer trip fires, and a case closes over them.
#[test]
fn the_demo_trips_its_alert_rules_from_the_command_line_and_a_case_closes_them() {
    let dir = tempfile::tempdir().unwrap();
    let (demo, endpoint, _) = start_demo(dir.path(), &["--citizens", "300"]);
    let run = |args: &[&str]| -> String {
        let out = Command::new(CIVEX)
            .args(args)
            .args(["--endpoint", &endpoint])
            .current_dir(dir.path())
            .output()
            .unwrap();
        format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr))
    };
    let samples = std::fs::read_to_string(dir.path().join("civex-data/demo-data/samples.tsv")).unwrap();
    // As the README's `cut -f1 | sort -u | head -4`.
    let ids: Vec<&str> = samples
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .take(4)
        .collect();
    let ask = |citizen: &str, operator: Option<&str>, attribute: &str| {
        let mut args = vec![
            "query",
            "--agency",
            "qujing-psb",
            "--purpose",
            "hukou.settlement",
            "--consent",
            "0123456789abcdef0123456789abcdef",
            "--citizen",
            citizen,
            "--attribute",
            attribute,
        ];
        if let Some(op) = operator {
            args.extend(["--operator", op]);
        }
        run(&args)
    };
    assert!(run(&["audit", "watch", "--citizen", ids[0], "--note", "public figure"]).contains("watched: "));
    for id in &ids {
        assert!(ask(id, Some("officer-1"), "ps.hukou.division").contains("CONSENT_NOT_FOUND"));
    }
    for op in ["officer-2", "officer-3"] {
        ask(ids[1], Some(op), "ps.hukou.division");
    }
    assert!(ask(ids[2], None, "ps.hukou.nature").contains("ATTRIBUTE_ABOLISHED"));
    for id in &ids {
        run(&["audit", "history", "--agency", "qujing-portal", "--citizen", id]);
        let granted = run(&[
            "consent",
            "grant",
            "--citizen",
            id,
            "--grantee",
            "qujing-psb",
            "--purpose",
            "hukou.settlement",
            "--scope",
            "ps.hukou.division",
        ]);
        assert!(granted.contains("consent_id: "), "{granted}");
    }

    // The rules run within a fraction of a second of each record.
    let mut listed = String::new();
    let wanted = [
        "watched_citizen",
        "operator_volume",
        "refusal_probe",
        "citizen_spread",
        "shared_credential",
        "abolished_request",
        "history_volume",
        "consent_burst",
    ];
    for _ in 0..50 {
        listed = run(&["audit", "alerts"]);
        if wanted.iter().all(|rule| listed.contains(rule)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for rule in wanted {
        assert!(listed.contains(rule), "{rule} missing from:\n{listed}");
    }
    let volume = listed
        .lines()
        .find(|l| l.contains("operator_volume"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let shown = run(&["audit", "alert", "show", &volume]);
    assert!(
        shown.contains("official   qujing-psb/officer-1") && shown.contains("audit indices: "),
        "{shown}"
    );

    let opened = run(&[
        "audit",
        "case",
        "open",
        "--title",
        "officer-1",
        "--alert",
        &volume,
        "--operator",
        "auditor-1",
    ]);
    let case = opened
        .lines()
        .find_map(|l| l.strip_prefix("case       "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{opened}"))
        .to_owned();
    run(&[
        "audit",
        "case",
        "note",
        &case,
        "--text",
        "asked the bureau",
        "--operator",
        "auditor-1",
    ]);
    let closed = run(&[
        "audit",
        "case",
        "close",
        &case,
        "--disposition",
        "misuse",
        "--operator",
        "auditor-1",
    ]);
    assert!(
        closed.contains("CASE_CLOSED") && closed.contains("as MISUSE"),
        "{closed}"
    );
    let logged = run(&["audit", "search", "--operator", "auditor-1"]);
    assert_eq!(
        logged.lines().filter(|l| l.contains("OversightService/")).count(),
        3,
        "open, note, close: {logged}"
    );
    drop(demo);
}

/// Reads `child`'s stream line by line until `until` matches one, within a minute.
fn read_until(stream: impl std::io::Read, until: impl Fn(&str) -> bool) -> Vec<String> {
    let started = Instant::now();
    let mut seen = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no line as wanted in {seen:?}"
        );
        let done = until(&line);
        seen.push(line);
        if done {
            return seen;
        }
    }
    panic!("the stream ended before the line wanted: {seen:?}");
}

#[test]
fn keys_never_makes_a_key_and_civex_witness_cosigns_a_served_gateways_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    // No gateway has run here: nothing to print, and nothing is created.
    let none = civex(dir.path(), &["keys", "--data", "civex-data"]);
    assert!(!none.status.success());
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(
        err.contains("no gateway verifier key at civex-data/gateway.vkey"),
        "{err}"
    );
    assert!(!dir.path().join("civex-data").exists(), "civex keys made a directory");

    let (demo, _, _) = start_demo(dir.path(), &["--citizens", "300"]);
    drop(demo);
    let vkey = std::fs::read_to_string(dir.path().join("civex-data/gateway.vkey")).unwrap();
    let keys = civex(dir.path(), &["keys", "--data", "civex-data"]);
    assert_eq!(stdout(&keys), vkey);

    // A witness of its own, trusting the gateway's key from its data directory.
    let mut witness = Demo(
        Command::new(CIVEX)
            .args([
                "witness",
                "--data",
                "w",
                "--listen",
                "127.0.0.1:0",
                "--log",
                "civex-data",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // All it prints, to the last line: a closed pipe would fail its next print.
    let printed = read_until(witness.0.stdout.take().unwrap(), |l| l.starts_with("  key = "));
    let url = printed[0]
        .strip_prefix("witness: ")
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_owned();
    let key = printed[1].strip_prefix("key: ").unwrap().to_owned();
    assert!(printed[0].ends_with("for civex/qujing-demo"), "{printed:?}");

    // `civex serve` with the witness named in its civex.toml.
    let config = dir.path().join("civex-data/civex.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[[audit.witnesses]]\nurl = \"{url}\"\nkey = \"{key}\"\n"));
    std::fs::write(&config, text).unwrap();
    let mut served = Demo(
        Command::new(CIVEX)
            .args(["--log-json", "serve", "--config", "civex-data/civex.toml"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let logged = read_until(served.0.stderr.take().unwrap(), |l| {
        l.contains(r#""message":"serving""#)
    });
    let line: serde_json::Value = serde_json::from_str(logged.last().unwrap()).unwrap();
    let endpoint = format!("https://{}", line["fields"]["addr"].as_str().unwrap());
    let checkpoint = civex(dir.path(), &["audit", "checkpoint", "--endpoint", &endpoint]);
    assert!(
        checkpoint.status.success(),
        "{}",
        String::from_utf8_lossy(&checkpoint.stderr)
    );
    let note = stdout(&checkpoint);
    let signers: Vec<&str> = note
        .lines()
        .filter_map(|l| l.strip_prefix("— "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(signers, ["civex/qujing-demo", "witness.localhost/civex"], "{note}");
}
