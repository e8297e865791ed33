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
        ["consent", "query", "consent", "check", "consent", "commitment", "audit"]
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
    assert!(outputs[5].contains("state: pending"), "{}", outputs[5]);
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
            "--as",
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
        run(&["audit", "history", "--as", "qujing-portal", "--citizen", id]);
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
        "--auditor",
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
        "--auditor",
        "auditor-1",
    ]);
    let closed = run(&[
        "audit",
        "case",
        "close",
        &case,
        "--disposition",
        "misuse",
        "--auditor",
        "auditor-1",
    ]);
    assert!(
        closed.contains("state      closed") && closed.contains("as misuse"),
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
fn keys_never_makes_a_key_civex_witness_cosigns_and_a_stale_civex_toml_is_named() {
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
    // An edit to an agency after the first start: the store stays in force, and the log says so.
    let tax = text.find("code = \"qujing-tax\"").unwrap();
    let name = tax + text[tax..].find("name = \"").unwrap() + "name = \"".len();
    text.insert_str(name, "edited ");
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
    let warned: Vec<serde_json::Value> = logged
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["level"] == "WARN" && l["fields"]["agency"] == "qujing-tax")
        .collect();
    assert_eq!(warned.len(), 1, "{logged:?}");
    assert_eq!(warned[0]["fields"]["difference"], "name differ");
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

/// Runs `civex` in `dir` with `stdin` on its standard input: success, stdout, stderr.
fn civex_with_input(dir: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(CIVEX)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        stdout(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The banner's sample citizen labelled `label…`, with its `--param`s.
fn sample<'a>(banner: &'a [String], label: &str) -> (&'a str, Vec<&'a str>) {
    for (at, line) in banner.iter().enumerate() {
        // A sample citizen: `<id>  <label>`.
        if let Some((id, rest)) = line.split_once("  ")
            && id.len() == 18
            && rest.starts_with(label)
        {
            return (id, Vec::new());
        }
        // An eligibility sample: its label, then `--citizen <id> --param …` on the next line.
        if line.starts_with(label) {
            let next: Vec<&str> = banner[at + 1].split_whitespace().collect();
            return (next[1], next[2..].iter().copied().filter(|p| *p != "--param").collect());
        }
    }
    panic!("no sample {label:?} in {banner:?}");
}

#[test]
fn every_client_command_answers_in_proto_json_through_the_demos_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let (demo, endpoint, banner) = start_demo(dir.path(), &["--citizens", "300"]);
    // No --endpoint and no certificate flags: civex-profiles.toml, written by the demo, says both.
    let json_in = |args: &[&str], stdin: &str| -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let (ok, out, err) = civex_with_input(dir.path(), &all, stdin);
        assert!(ok, "{args:?}: {err}");
        assert_eq!(out.lines().count(), 1, "{args:?}: one JSON document: {out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    let json = |args: &[&str]| json_in(args, "");
    let (owner, _) = sample(&banner, "owns a home");

    let catalogue = json(&["catalogue"]);
    assert!(catalogue["attributes"][0]["valueType"].is_string(), "{catalogue}");
    assert!(catalogue["purposes"].as_array().unwrap().len() > 3);
    let certificates = json(&["catalogue", "--certificates"]);
    assert_eq!(certificates["certificates"].as_array().unwrap().len(), 22);
    assert_eq!(certificates["certificates"][0]["status"], "CERT_ABOLISHED");
    assert_eq!(certificates["certificates"][0]["answeredBy"], serde_json::json!([]));
    assert_eq!(certificates["attributes"], serde_json::json!([]));

    // The citizen's ID from standard input, never on the command line.
    let granted = json_in(
        &[
            "consent",
            "grant",
            "--citizen",
            "-",
            "--grantee",
            "qujing-psb",
            "--purpose",
            "hukou.settlement",
            "--scope",
            "ps.hukou.division",
        ],
        &format!("{owner}\n"),
    );
    let consent = granted["consentId"].as_str().unwrap().to_owned();
    assert_eq!(granted["citizenId"], owner);
    assert_eq!(
        json(&["consent", "get", "--consent", &consent])["consentId"],
        consent.as_str()
    );
    let listed = json_in(&["consent", "list", "--citizen", "-"], owner);
    assert!(
        listed["consents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["consentId"] == consent.as_str())
    );

    // The settlement authority's look-up of the owner's division, with more flags as given.
    let look_up = |more: &[&str]| {
        let mut args = vec![
            "query",
            "--profile",
            "qujing-psb",
            "--citizen",
            owner,
            "--purpose",
            "hukou.settlement",
            "--consent",
            &consent,
            "--attribute",
            "ps.hukou.division",
        ];
        args.extend_from_slice(more);
        json(&args)
    };
    let answered = look_up(&["--request-id", "req-42"]);
    assert_eq!(answered["facts"][0]["attribute"], "ps.hukou.division");
    assert_eq!(answered["requestId"], "req-42");
    let index: u64 = answered["auditIndex"].as_str().unwrap().parse().unwrap();

    // A consent of `citizen` for qujing-psb to `scope` for `purpose`: its id.
    let grant = |citizen: &str, purpose: &str, scope: &str| {
        let args = [
            "consent",
            "grant",
            "--citizen",
            citizen,
            "--grantee",
            "qujing-psb",
            "--purpose",
            purpose,
            "--scope",
            scope,
        ];
        json(&args)["consentId"].as_str().unwrap().to_owned()
    };
    let (urban, params) = sample(&banner, "settlement.urban: satisfied");
    let urban_consent = grant(urban, "hukou.settlement", "settlement.urban");
    let mut check = vec![
        "check",
        "--citizen",
        urban,
        "--purpose",
        "hukou.settlement",
        "--consent",
        &urban_consent,
        "--predicate",
        "settlement.urban",
        "--request-id",
        "req-43",
    ];
    for p in &params {
        check.extend(["--param", p]);
    }
    let checked = json(&check);
    assert_eq!(
        (&checked["satisfied"], &checked["requestId"]),
        (&serde_json::json!(true), &serde_json::json!("req-43"))
    );
    assert!(checked["auditIndex"].as_str().unwrap().parse::<u64>().unwrap() > index);
    // A check in place of a certificate (健在证明), with no parameters.
    let (living, _) = sample(&banner, "ps.alive: living");
    let alive_consent = grant(living, "hukou.settlement", "ps.alive");
    let alive = json(&[
        "check",
        "--citizen",
        living,
        "--purpose",
        "hukou.settlement",
        "--consent",
        &alive_consent,
        "--predicate",
        "ps.alive",
    ]);
    assert_eq!(alive["satisfied"], true, "{alive}");
    assert_eq!(alive["basis"], "民发〔2020〕20号；公通字〔2016〕21号");

    // A commitment (告知承诺) to the demo's matter, checked by the gateway once due.
    let (resident, params) = sample(&banner, "residence.months_at_least: a year and more");
    let commit_consent = grant(resident, "residence_permit.issue", "residence.months_at_least");
    let statement = dir.path().join("statement.txt");
    std::fs::write(&statement, "本人承诺在530302居住满12个月。").unwrap();
    let statement = statement.to_str().unwrap();
    let mut commit = vec![
        "commitment",
        "record",
        "--citizen",
        resident,
        "--purpose",
        "residence_permit.issue",
        "--consent",
        &commit_consent,
        "--matter",
        "demo.residence",
        "--statement",
        statement,
        "--predicate",
        "residence.months_at_least",
        "--verify-in-days",
        "7",
    ];
    for p in &params {
        commit.extend(["--param", p]);
    }
    let committed = json(&commit);
    assert_eq!(committed["state"], "COMMITMENT_PENDING", "{committed}");
    let id = committed["commitmentId"].as_str().unwrap().to_owned();
    let listed = json(&["commitment", "list", "--state", "pending"]);
    assert_eq!(listed["commitments"][0]["commitmentId"], id.as_str());
    assert_eq!(
        json(&["commitment", "show", "--commitment", &id])["receipt"],
        committed["receipt"]
    );

    // An objection to a fact the settlement authority received: corrected, it is told.
    let opened = json_in(
        &[
            "objection",
            "open",
            "--citizen",
            "-",
            "--attribute",
            "ps.hukou.division",
            "--statement",
            "registered elsewhere since last year",
        ],
        owner,
    );
    let objection = opened["objectionId"].as_str().unwrap().to_owned();
    let open = json(&["objection", "list", "--state", "open"]);
    assert_eq!(
        open["objections"][0]["citizenId"], owner,
        "the steward sees whose record"
    );
    let resolved = json(&[
        "objection",
        "resolve",
        "--objection",
        &objection,
        "--outcome",
        "corrected",
    ]);
    assert_eq!(resolved["state"], "OBJECTION_CORRECTED");
    let told = json(&["corrections"]);
    assert_eq!(told["corrections"][0]["originalRequestId"], "req-42", "{told}");

    // The audit side, as the demo's default auditor profile.
    let entry = json(&["audit", "search", "--request-id", "req-42"]);
    assert_eq!(entry["entries"][0]["index"], index.to_string());
    assert_eq!(entry["entries"][0]["decision"], "DECISION_ALLOW");
    let history = json_in(&["audit", "history", "--citizen", "-"], owner);
    assert!(
        history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["requestId"] == "req-42")
    );
    let checkpoint = json(&["audit", "checkpoint"]);
    assert!(
        checkpoint["note"]
            .as_str()
            .unwrap()
            .contains("— witness.localhost/civex-demo "),
        "{checkpoint}"
    );
    assert!(checkpoint["treeSize"].as_str().unwrap().parse::<u64>().unwrap() > index);
    let report = json(&["audit", "report", "--allowed"]);
    assert!(
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "ExchangeService/Query")
    );
    // The checkpoint verifies under the gateway's key and carries the demo witness's cosignature.
    let witness = banner
        .iter()
        .find_map(|l| l.split("(key ").nth(1))
        .and_then(|k| k.strip_suffix(')'))
        .expect("the banner's witness key");
    let verified = json(&[
        "audit",
        "verify",
        "--endpoint",
        &endpoint,
        "--vkey",
        "civex-data",
        "--witness",
        witness,
    ]);
    assert_eq!(verified["ok"], true);
    assert_eq!(
        verified["cosignedBy"],
        serde_json::json!(["witness.localhost/civex-demo"])
    );
    // A witness that never saw this log: its cosignature is missing, and verify says so.
    let elsewhere = tempfile::tempdir().unwrap();
    let stranger = civex_audit::witness::Witness::open(elsewhere.path(), "witness.elsewhere/w9", vec![]).unwrap();
    let (ok, _, err) = civex_with_input(
        dir.path(),
        &[
            "audit",
            "verify",
            "--vkey",
            "civex-data",
            "--witness",
            &stranger.verifier_key(),
        ],
        "",
    );
    assert!(
        !ok && err.contains("witness cosignatures FAILED: 0 of the 1 required; none valid from witness.elsewhere/w9"),
        "{err}"
    );

    let watched = json_in(&["audit", "watch", "--citizen", "-", "--note", "press"], owner);
    let pseudonym = watched["citizenRef"].as_str().unwrap().to_owned();
    assert_eq!(pseudonym.len(), 64);
    assert_eq!(
        json(&["audit", "watched"])["entries"][0]["citizenRef"],
        pseudonym.as_str()
    );
    let unnamed = look_up(&[]);
    // A request id the caller did not give is made up, so the record can be found by it.
    let made_up = unnamed["requestId"].as_str().unwrap();
    assert!(made_up.starts_with("cli-") && made_up.len() == 20, "{unnamed}");
    assert_eq!(
        json(&["audit", "search", "--request-id", made_up])["entries"][0]["requestId"],
        made_up
    );
    // The first alert a listing shows, once the rules have raised one (within 10 s).
    let first_alert = |listing: &[&str]| {
        let mut listed = serde_json::Value::Null;
        for _ in 0..50 {
            listed = json(listing);
            if listed["alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        listed["alerts"][0]["alertId"]
            .as_str()
            .unwrap_or_else(|| panic!("{listed}"))
            .to_owned()
    };
    let alert = first_alert(&["audit", "alerts", "--rule", "WATCHED_CITIZEN"]);
    assert_eq!(json(&["audit", "alert", "show", &alert])["rule"], "watched_citizen");
    let case = json(&["audit", "case", "open", "--title", "press", "--alert", &alert, "--only"]);
    let case_id = case["caseId"].as_str().unwrap().to_owned();
    json(&["audit", "case", "note", &case_id, "--text", "asked"]);
    json(&["audit", "case", "assign", &case_id, "--to", "auditor-2"]);
    json(&["audit", "case", "investigate", &case_id]);
    let closed = json(&["audit", "case", "close", &case_id, "--disposition", "justified"]);
    assert_eq!(
        (&closed["state"], &closed["disposition"]),
        (&serde_json::json!("CASE_CLOSED"), &serde_json::json!("JUSTIFIED"))
    );
    assert_eq!(json(&["audit", "case", "show", &case_id])["assignee"], "auditor-2");
    assert!(
        json(&["audit", "case", "list"])["cases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["caseId"] == case_id.as_str())
    );
    assert_eq!(
        json_in(&["audit", "unwatch", "--citizen", "-"], owner)["citizenRef"],
        pseudonym.as_str()
    );
    // An abolished attribute asked for raises an alert, which needs no case.
    let (asked, _, _) = civex_with_input(
        dir.path(),
        &[
            "query",
            "--citizen",
            owner,
            "--purpose",
            "hukou.settlement",
            "--consent",
            &consent,
            "--attribute",
            "ps.hukou.nature",
        ],
        "",
    );
    assert!(!asked, "the abolished attribute was answered");
    let abolished = first_alert(&["audit", "alerts", "--rule", "abolished_request", "--state", "open"]);
    let dismissed = json(&["audit", "alert", "dismiss", &abolished, "--note", "a test"]);
    assert_eq!(dismissed["state"], "ALERT_DISMISSED");
    let revoked = json(&["consent", "revoke", "--consent", &consent, "--reason", "done"]);
    assert!(revoked["revokedAt"].is_string(), "{revoked}");

    // The administrator's commands.
    let added = json(&[
        "agency",
        "add",
        "--code",
        "qujing-json",
        "--name",
        "JSON",
        "--department",
        "tax",
        "--role",
        "requester",
    ]);
    assert_eq!(added["code"], "qujing-json");
    assert_eq!(added["effectiveRate"]["perSecond"], 1000, "{added}");
    json(&[
        "agency",
        "update",
        "--code",
        "qujing-json",
        "--name",
        "JSON 2",
        "--department",
        "tax",
        "--role",
        "requester",
    ]);
    json(&["agency", "rights", "qujing-json", "--add", "tax.*=tax.admin"]);
    assert_eq!(json(&["agency", "show", "qujing-json"])["rights"][0]["scope"], "tax.*");
    assert_eq!(
        json(&["agency", "suspend", "qujing-json"])["status"],
        "AGENCY_STATUS_SUSPENDED"
    );
    assert_eq!(
        json(&["agency", "reinstate", "qujing-json"])["status"],
        "AGENCY_STATUS_ACTIVE"
    );
    assert!(json(&["agency", "list"])["agencies"].as_array().unwrap().len() > 9);
    assert!(
        civex(dir.path(), &["certs", "csr", "--agency", "qujing-json", "--dir", "new"])
            .status
            .success()
    );
    let issued = json(&[
        "agency",
        "issue-cert",
        "qujing-json",
        "--csr",
        "new/qujing-json.csr",
        "--out",
        "new/qujing-json.pem",
    ]);
    let serial = issued["serial"].as_str().unwrap().to_owned();
    assert_eq!(json(&["agency", "revoke-cert", &serial])["serial"], serial.as_str());
    let certs = json(&["agency", "certs", "qujing-json"]);
    assert_eq!(certs["certificates"][0]["serial"], serial.as_str());
    assert!(certs["certificates"][0]["revokedAt"].is_string() && certs["certificates"][0]["notAfter"].is_string());
    drop(demo);
}

#[test]
fn the_command_line_refuses_to_guess_and_says_what_to_give() {
    let dir = tempfile::tempdir().unwrap();
    // Without a profile file or certificate flags there is no identity to call as.
    let (ok, _, err) = civex_with_input(dir.path(), &["catalogue"], "");
    assert!(
        !ok && err.contains("no identity to call the gateway as: give --profile NAME"),
        "{err}"
    );

    let (demo, _, banner) = start_demo(dir.path(), &["--citizens", "300"]);
    let run = |args: &[&str]| civex_with_input(dir.path(), args, "");
    let ok = |args: &[&str]| {
        let (ok, out, err) = run(args);
        assert!(ok, "{args:?}: {err}");
        out
    };
    let refused = |args: &[&str], says: &str| {
        let (ok, _, err) = run(args);
        assert!(!ok && err.contains(says), "{args:?} should say {says:?}: {err}");
    };
    refused(
        &["catalogue", "--profile", "nobody"],
        "no profile \"nobody\" in civex-profiles.toml",
    );
    refused(
        &["commitment", "show", "--commitment", "0123456789abcdef0123456789abcdef"],
        "COMMITMENT_NOT_FOUND",
    );
    let commitment = [
        "commitment",
        "record",
        "--citizen",
        "530302199003070011",
        "--purpose",
        "residence_permit.issue",
        "--consent",
        "0123456789abcdef0123456789abcdef",
        "--matter",
        "demo.residence",
        "--statement",
        "-",
        "--predicate",
        "residence.months_at_least",
        "--param",
        "months=12",
        "--param",
        "months=1",
    ];
    refused(&commitment, "--verify-after");
    refused(&commitment, "--verify-in-days");
    refused(
        &[&commitment[..], &["--verify-in-days", "1"]].concat(),
        "param months is given twice",
    );
    let map = ok(&["catalogue", "--certificates"]);
    assert!(
        map.contains(" 1. 户口性质证明") && map.contains("answered by: nothing") && map.contains("ps.alive"),
        "{map}"
    );

    // An agency registered twice; an update on purpose.
    let agency = [
        "--code",
        "qujing-twice",
        "--name",
        "Twice",
        "--department",
        "tax",
        "--role",
        "requester",
    ];
    ok(&[&["agency", "add"][..], &agency].concat());
    refused(
        &[&["agency", "add"][..], &agency].concat(),
        "AlreadyExists ALREADY_EXISTS",
    );
    let updated = ok(&[
        &["agency", "update"][..],
        &agency[..6],
        &["--rate", "5/10", "--role", "requester"],
    ]
    .concat());
    assert!(
        updated.contains("rate 5/s burst 10") && !updated.contains("default"),
        "{updated}"
    );
    assert!(ok(&["agency", "show", "qujing-psb"]).contains("rate 1000/s burst 2000 (the gateway's default)"));

    // Rights change one by one, or are replaced whole only when asked to.
    refused(&["agency", "rights", "qujing-twice"], "say what changes: --add RIGHT");
    let added = ok(&[
        "agency",
        "rights",
        "qujing-twice",
        "--add",
        "tax.*=tax.admin",
        "--add",
        "ps.hukou.division=tax.admin",
    ]);
    assert!(
        added.contains("right tax.* for tax.admin") && added.contains("right ps.hukou.division"),
        "{added}"
    );
    let removed = ok(&["agency", "rights", "qujing-twice", "--remove", "tax.*"]);
    assert!(
        !removed.contains("right tax.*") && removed.contains("right ps.hukou.division"),
        "{removed}"
    );
    refused(
        &["agency", "rights", "qujing-twice", "--remove", "tax.*"],
        "holds no right to \"tax.*\"",
    );
    refused(
        &[
            "agency",
            "rights",
            "qujing-twice",
            "--remove",
            "ps.hukou.division=tax.admin",
        ],
        "--remove takes a scope (ps.hukou.division)",
    );
    // An update changes what it names and keeps the rest.
    let renamed = ok(&["agency", "update", "--code", "qujing-twice", "--name", "Renamed"]);
    assert!(
        renamed.contains("Renamed") && renamed.contains("right ps.hukou.division") && renamed.contains("rate 5/s"),
        "{renamed}"
    );
    let rated = ok(&["agency", "rights", "qujing-twice", "--rate", "7/9"]);
    assert!(
        rated.contains("rate 7/s burst 9") && rated.contains("right ps.hukou.division"),
        "{rated}"
    );
    let replaced = ok(&[
        "agency",
        "rights",
        "qujing-twice",
        "--replace",
        "--right",
        "tax.*=tax.admin",
    ]);
    assert!(
        replaced.contains("right tax.*") && !replaced.contains("ps.hukou"),
        "{replaced}"
    );
    let emptied = ok(&["agency", "rights", "qujing-twice", "--replace"]);
    assert!(!emptied.contains("right "), "{emptied}");

    // An agency's certificates: the dev PKI's for a demo agency.
    let certs = ok(&["agency", "certs", "qujing-psb"]);
    assert_eq!(
        certs.lines().count(),
        2,
        "a header and the dev PKI's certificate: {certs}"
    );

    // Paging says when there is more, and where to go on from.
    let (owner, _) = sample(&banner, "owns a home");
    for _ in 0..3 {
        ok(&["audit", "history", "--citizen", owner]);
    }
    let first = ok(&[
        "audit",
        "search",
        "--action",
        "AuditService/AccessHistory",
        "--limit",
        "2",
    ]);
    let token = first
        .lines()
        .last()
        .and_then(|l| l.split("--page-token ").nth(1))
        .unwrap_or_else(|| panic!("no continuation in {first}"))
        .to_owned();
    let rest = ok(&[
        "audit",
        "search",
        "--action",
        "AuditService/AccessHistory",
        "--limit",
        "2",
        "--page-token",
        &token,
    ]);
    let indices = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("AuditService/AccessHistory"))
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect()
    };
    let (a, b) = (indices(&first), indices(&rest));
    assert_eq!((a.len(), b.len()), (2, 1), "{first}\n{rest}");
    assert!(!a.contains(&b[0]));
    assert!(rest.lines().last().unwrap() == "(1 entries)", "{rest}");
    // A pseudonym as the entries print it finds the same citizen.
    let pseudonym = first
        .lines()
        .find(|l| l.contains("AuditService/AccessHistory"))
        .unwrap()
        .split("citizen ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_eq!(pseudonym.len(), 64);
    let by_ref = ok(&[
        "audit",
        "search",
        "--citizen-ref",
        &pseudonym,
        "--action",
        "AuditService/AccessHistory",
    ]);
    assert_eq!(indices(&by_ref).len(), 3, "{by_ref}");
    refused(
        &[
            "audit",
            "report",
            "--since",
            "2026-12-02T00:00:00Z",
            "--until",
            "2026-12-01T00:00:00Z",
        ],
        "--until 2026-12-01T00:00:00Z is before --since",
    );

    // Verify names a wrong key as a key mismatch, not as tampering.
    let stranger = tempfile::tempdir().unwrap();
    let other = Command::new(CIVEX)
        .args(["demo", "--listen", "127.0.0.1:0", "--citizens", "10"])
        .current_dir(stranger.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut other = Demo(other);
    read_until(other.0.stdout.take().unwrap(), |l| l.starts_with("Stop with"));
    drop(other);
    let foreign = std::fs::read_to_string(stranger.path().join("civex-data/gateway.vkey")).unwrap();
    refused(
        &["audit", "verify", "--profile", "qujing-audit", "--vkey", foreign.trim()],
        "key hash mismatch: the checkpoint is signed by civex/qujing-demo+",
    );
    drop(demo);
}
