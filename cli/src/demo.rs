//! `civex demo`: on a fresh checkout, everything a gateway needs, then serve.
//!
//! Creates the dev PKI (if absent), a data directory with synthetic citizens
//! in every department (if empty), the demo configuration, and serves with
//! mTLS on loopback. Run again, it keeps the data, consents and keys it finds.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context;
use civex_adapters::Department;
use clap::Args;

use super::tools::{import_file, init_certs};
use civex_gateway::{
    Gateway,
    config::{Config, DepartmentConfig, Engine, RemoteDepartment, StorageConfig, TlsConfig},
    store,
};

use crate::{
    client::{self, ClientTls},
    console, demo_data,
};

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Keys and config; with the embedded engine also every store.
    #[arg(long, default_value = "civex-data")]
    data: PathBuf,
    /// Keep every store in this PostgreSQL database instead
    /// (`postgres://user@host:port/db`): gateways started with the same
    /// `--storage`, `--data` and `--certs` form one deployment.
    #[arg(long, env = "CIVEX_STORAGE_URL")]
    storage: Option<String>,
    /// Where the dev PKI is (written if absent).
    #[arg(long, default_value = "certs")]
    certs: PathBuf,
    /// Synthetic citizens to generate on first start.
    #[arg(long, default_value_t = 10_000)]
    citizens: usize,
    #[arg(long, default_value_t = 2016)]
    seed: u64,
    /// Serve these departments from their own `civex source` processes
    /// instead of the embedded registry, e.g. `--remote housing,tax`.
    #[arg(long, value_delimiter = ',')]
    remote: Vec<Department>,
    /// Where the oversight console listens (port 0: a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    console_listen: SocketAddr,
    /// Where Prometheus metrics are served over plain HTTP (port 0: a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    metrics_listen: SocketAddr,
    /// Where the demo's own witness listens (port 0: a free one); it
    /// cosigns every checkpoint the demo gives out.
    #[arg(long, default_value = "127.0.0.1:0")]
    witness_listen: SocketAddr,
}

/// The synthetic registries' files, under the data directory.
const DEMO_DATA: &str = "demo-data";
const SAMPLES_FILE: &str = "samples.tsv";
/// A citizen's signed statement for the printed commitment example.
const STATEMENT_FILE: &str = "statement.txt";

pub(super) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !args.certs.join("ca.pem").exists() {
        init_certs(&args.certs)?;
        println!("wrote the development PKI to {}", args.certs.display());
    }
    let demo_dir = args.data.join(DEMO_DATA);
    let samples = prepare_data(&args, &demo_dir)?;

    let config = Config {
        listen: args.listen,
        data_dir: args.data.clone(),
        storage: storage(&args),
        tls: TlsConfig::in_dir(&args.certs),
        // Thresholds a newcomer trips from the command line in a minute.
        alerts: civex_gateway::oversight::rules::AlertsConfig::demo(),
        metrics: civex_gateway::config::MetricsConfig {
            listen: Some(args.metrics_listen),
        },
        ..Config::default()
    };
    let config_path = args.data.join("civex.toml");
    if !config_path.exists() {
        std::fs::write(&config_path, toml::to_string(&config)?)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
    }
    // Remote departments live only as long as this demo: their ports are not saved.
    let mut config = config;
    let mut sources = Vec::new();
    for department in &args.remote {
        let (child, endpoint) = start_source(*department, &demo_dir, &args.certs, &args.data).await?;
        println!("  {department} served by its own system at {endpoint}");
        let certs = &args.certs;
        let remote = RemoteDepartment::new(
            endpoint,
            certs.join("ca.pem"),
            certs.join("gateway.pem"),
            certs.join("gateway.key"),
        );
        config
            .departments
            .insert(department.code().to_owned(), DepartmentConfig::Remote(remote));
        sources.push(child);
    }
    // The demo's witness, like its remote departments, lives only as long as the demo.
    let (witness_addr, witness_key, witness) = start_witness(&args, &config).await?;
    config.audit.witnesses.push(civex_gateway::config::WitnessConfig {
        url: format!("http://{witness_addr}"),
        key: witness_key,
    });
    let witness = tokio::spawn(witness);
    let gateway = Gateway::bind(config).await?;
    let auditor = {
        let (ca, cert, key) = ClientTls::demo_paths(&args.certs, console::AUDITOR);
        ClientTls::from_files(&ca, &cert, &key)?
    };
    let channel = client::endpoint_for(&format!("https://{}", gateway.local_addr()), &auditor)?.connect_lazy();
    write_profiles(&gateway, &args.certs)?;
    let console = console::start(args.console_listen, channel, &gateway.verifier_key()).await?;
    print_banner(&gateway, &args, &config_path, &samples);
    // The console prints its `console: <login link>` line as it starts.
    let console = tokio::spawn(console.serve(super::shutdown_signal()));
    let served = super::serve(gateway).await;
    console.abort();
    witness.abort();
    served
}

/// Writes `civex-profiles.toml` in the working directory: a profile for
/// each demo agency, and for each role the first agency holding it as the
/// default of the commands in that role.
fn write_profiles(gateway: &Gateway, certs: &Path) -> anyhow::Result<()> {
    use crate::conn::{PROFILES_FILE, Profile, Profiles};
    let endpoint = format!("https://{}", gateway.local_addr());
    let agencies = civex_gateway::config::demo_agencies();
    let mut profiles = Profiles::default();
    for agency in &agencies {
        let (ca, cert, key) = ClientTls::demo_paths(certs, &agency.code);
        let profile = Profile {
            endpoint: endpoint.clone(),
            ca,
            cert,
            key,
        };
        profiles.profiles.insert(agency.code.clone(), profile);
    }
    for (role, key) in [
        (civex_gateway::policy::access::Role::Requester, "requester"),
        (
            civex_gateway::policy::access::Role::ConsentRegistrar,
            "consent_registrar",
        ),
        (civex_gateway::policy::access::Role::Auditor, "auditor"),
        (civex_gateway::policy::access::Role::Admin, "admin"),
        (civex_gateway::policy::access::Role::DataSteward, "data_steward"),
    ] {
        if let Some(first) = agencies.iter().find(|a| a.roles.contains(&role)) {
            profiles.defaults.insert(key.to_owned(), first.code.clone());
        }
    }
    profiles.write(Path::new(PROFILES_FILE))
}

/// The demo's witness, trusting this gateway's key, its store in
/// `<data>/witness` — or, while another demo of the same data directory
/// (a shared deployment) holds that, in `<data>/witness-<n>`.
async fn start_witness(
    args: &DemoArgs,
    config: &Config,
) -> anyhow::Result<(SocketAddr, String, impl Future<Output = anyhow::Result<()>> + use<>)> {
    let signer = civex_audit::keys::Signer::load_or_create(&config.data_dir, &format!("civex/{}", config.name))?;
    let log = civex_audit::keys::Verifier::parse(&signer.verifier_key())?;
    let (dir, lock) = (1..=16)
        .map(|n| match n {
            1 => args.data.join("witness"),
            n => args.data.join(format!("witness-{n}")),
        })
        .find_map(|dir| {
            std::fs::create_dir_all(&dir).ok()?;
            let lock = std::fs::File::create(dir.join("demo.lock")).ok()?;
            lock.try_lock().ok()?;
            Some((dir, lock))
        })
        .context("every demo witness directory in the data directory is in use")?;
    let (addr, key, serve) =
        crate::witness::start(&dir, "witness.localhost/civex-demo", args.witness_listen, vec![log]).await?;
    println!("witness: http://{addr} cosigns the checkpoints (key {key})");
    // The lock is held as long as the witness serves.
    Ok((addr, key, async move {
        let served = serve.await;
        drop(lock);
        served
    }))
}

/// Starts `civex source` for one department as a child process (stopped when
/// the demo stops) and returns it with the endpoint it printed.
async fn start_source(
    department: Department,
    demo_dir: &Path,
    certs: &Path,
    data: &Path,
) -> anyhow::Result<(tokio::process::Child, String)> {
    use tokio::io::AsyncBufReadExt;
    let code = department.code();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("source")
        .args(["--department", code, "--certs"])
        .arg(certs)
        .arg("--data")
        .arg(demo_dir.join(format!("{code}.jsonl")))
        // The CRL the gateway publishes: a revoked gateway certificate stops working at the source too.
        .arg("--crl")
        .arg(data.join(civex_gateway::authority::CRL_FILE))
        .arg("--until-stdin-closes")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start the {code} source"))?;
    let stdout = child.stdout.take().context("no stdout from the source")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .with_context(|| format!("the {code} source did not start"))??
        .with_context(|| format!("the {code} source exited"))?;
    let endpoint = line.rsplit(" on ").next().unwrap_or_default().to_owned();
    anyhow::ensure!(
        endpoint.starts_with("https://"),
        "unexpected output from the {code} source: {line}"
    );
    Ok((child, endpoint))
}

/// The engine `--storage` selects.
fn storage(args: &DemoArgs) -> StorageConfig {
    match &args.storage {
        Some(url) => StorageConfig {
            engine: Engine::Postgres,
            url: Some(url.clone()),
        },
        None => StorageConfig::default(),
    }
}

/// A citizen worth trying, as the demo prints it.
struct DemoSample {
    citizen_id: String,
    label: String,
    /// `name=value` parameters for a predicate sample.
    params: Vec<String>,
}

/// Generates and imports the synthetic citizens unless the registries hold
/// data already; the samples are kept beside the data (`samples.tsv`).
fn prepare_data(args: &DemoArgs, demo_dir: &Path) -> anyhow::Result<Vec<DemoSample>> {
    std::fs::create_dir_all(&args.data)?;
    let stores = store::open_engine(&storage(args), &args.data)?;
    let registries = stores.registries.as_ref();
    let empty = match registries.records(Department::PublicSecurity) {
        Ok(records) => records == 0,
        // The demo's own data can always be made again.
        Err(e) => {
            println!("{e}: importing the demo data again");
            true
        }
    };
    if empty {
        println!(
            "generating {} synthetic citizens in {}",
            args.citizens,
            demo_dir.display()
        );
        let samples = demo_data::generate(args.citizens, args.seed, demo_dir)?;
        for department in Department::ALL {
            let file = demo_dir.join(format!("{}.jsonl", department.code()));
            let count = import_file(registries, department, &file)?;
            println!("  imported {count:>6} {department} records");
        }
        let tsv: String = samples
            .iter()
            .map(|s| {
                let params: Vec<String> = s.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{}\t{}\t{}\n", s.citizen_id, s.label, params.join(" "))
            })
            .collect();
        std::fs::write(demo_dir.join(SAMPLES_FILE), tsv)?;
    }
    // Written on every start, so that a data directory older than the example has it too.
    std::fs::write(
        demo_dir.join(STATEMENT_FILE),
        "本人承诺：在530302实际居住已满12个月。如有不实，愿承担相应责任。\n\
         I declare that I have lived in 530302 for 12 months or more.\n",
    )?;
    let tsv = std::fs::read_to_string(demo_dir.join(SAMPLES_FILE)).unwrap_or_default();
    Ok(tsv
        .lines()
        .filter_map(|l| {
            let mut fields = l.split('\t');
            Some(DemoSample {
                citizen_id: fields.next()?.to_owned(),
                label: fields.next()?.to_owned(),
                params: fields
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect())
}

/// Prints how to call the demo. Write errors are ignored: a demo whose
/// stdout was closed keeps serving.
fn print_banner(gateway: &Gateway, args: &DemoArgs, config_path: &Path, samples: &[DemoSample]) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let addr = gateway.local_addr();
    let endpoint = format!("https://{addr}");
    let certs = args.certs.display();
    // The example asks about housing and employment: a home owner shows facts from both.
    let citizen = samples
        .iter()
        .find(|s| s.label.starts_with("owns a home"))
        .or(samples.first())
        .map(|s| s.citizen_id.as_str())
        .unwrap_or("530302199003070011");
    let _ = writeln!(out);
    let _ = writeln!(out, "civex demo serving on {endpoint}");
    let _ = writeln!(
        out,
        "  data {}  config {}  certs {certs}",
        args.data.display(),
        config_path.display()
    );
    let _ = writeln!(out, "  verifier key {}", gateway.verifier_key());
    let _ = writeln!(out);
    let _ = writeln!(out, "Sample citizens:");
    let is_branch = |s: &&DemoSample| demo_data::BRANCHES.iter().any(|b| b.label == s.label);
    for s in samples.iter().filter(|s| !is_branch(s)) {
        let _ = writeln!(out, "  {}  {}", s.citizen_id, s.label);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Eligibility checks (civex check), a citizen for every branch of every predicate:"
    );
    for s in samples.iter().filter(is_branch) {
        let params: Vec<String> = s.params.iter().map(|p| format!("--param {p}")).collect();
        let _ = writeln!(
            out,
            "  {}\n      --citizen {} {}",
            s.label,
            s.citizen_id,
            params.join(" ")
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Try it (in another terminal, from this directory; {} holds a profile per demo agency):",
        crate::conn::PROFILES_FILE
    );
    let _ = writeln!(
        out,
        "  cargo run --release --bin civex -- consent grant --profile qujing-portal \\\n    \
         --citizen {citizen} --grantee qujing-psb --purpose hukou.settlement \\\n    \
         --scope ps.hukou.division --scope housing.owned_residence.division --scope hrss.employment.registered"
    );
    let _ = writeln!(
        out,
        "  cargo run --release --bin civex -- query --profile qujing-psb \\\n    \
         --citizen {citizen} --purpose hukou.settlement --consent <consent_id printed above> \\\n    \
         --attribute ps.hukou.division --attribute housing.owned_residence.division --attribute hrss.employment.registered"
    );
    if let Some(urban) = samples
        .iter()
        .find(|s| s.label.starts_with("settlement.urban: satisfied"))
    {
        let (id, params) = (
            &urban.citizen_id,
            urban.params.iter().map(|p| format!("--param {p}")).collect::<Vec<_>>(),
        );
        let _ = writeln!(
            out,
            "  cargo run --release --bin civex -- consent grant --profile qujing-portal \\\n    \
             --citizen {id} --grantee qujing-psb --purpose hukou.settlement --scope settlement.urban"
        );
        let _ = writeln!(
            out,
            "  cargo run --release --bin civex -- check --profile qujing-psb \\\n    \
             --citizen {id} --purpose hukou.settlement --consent <consent_id printed above> \\\n    \
             --predicate settlement.urban {}",
            params.join(" ")
        );
    }
    if let Some(resident) = samples
        .iter()
        .find(|s| s.label.starts_with("residence.months_at_least: a year"))
    {
        let id = &resident.citizen_id;
        let _ = writeln!(
            out,
            "Notification and commitment (告知承诺), checked by the gateway once due (matter demo.residence samples all):"
        );
        let _ = writeln!(
            out,
            "  cargo run --release --bin civex -- consent grant --profile qujing-portal \\\n    \
             --citizen {id} --grantee qujing-psb --purpose residence_permit.issue --scope residence.months_at_least"
        );
        let _ = writeln!(
            out,
            "  cargo run --release --bin civex -- commitment record --profile qujing-psb \\\n    \
             --citizen {id} --purpose residence_permit.issue --consent <consent_id printed above> \\\n    \
             --matter demo.residence --statement {} --verify-in-days 1 \\\n    \
             --predicate residence.months_at_least --param division=530302 --param months=12",
            args.data.join(DEMO_DATA).join(STATEMENT_FILE).display()
        );
    }
    let _ = writeln!(
        out,
        "Oversight (the demo's alert rules fire at low thresholds; README, \"Trip an alert\"):"
    );
    let _ = writeln!(
        out,
        "  cargo run --release --bin civex -- audit alerts --profile qujing-audit"
    );
    if let Some(metrics) = gateway.metrics_addr() {
        let _ = writeln!(out, "Prometheus metrics (text format):");
        let _ = writeln!(out, "metrics: http://{metrics}/metrics");
    }
    let _ = writeln!(
        out,
        "Oversight console (open the console: link below in a browser; each link logs in once and the next is printed):"
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Stop with Ctrl-C.");
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush());
}
