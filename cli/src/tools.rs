//! Commands that work on local files: `certs`, `id`, `demo-data`, `import`, `keys`.

use std::{
    io::BufReader,
    path::{Path, PathBuf},
};

use anyhow::Context;
use civex_adapters::Department;
use clap::{Args, Subcommand};

use civex_adapters::{RegistryStore, citizen_id, import as importer};
use civex_gateway::{config, store};

use crate::{demo_data, pki};

#[derive(Debug, Subcommand)]
pub(super) enum CertsCommand {
    /// Write a dev CA, the gateway's certificate and one client certificate per demo agency.
    Init {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Overwrite an existing CA.
        #[arg(long)]
        force: bool,
    },
    /// Make an agency's key and CSR, on the agency's side.
    Csr(super::admin::CsrArgs),
}

#[derive(Debug, Subcommand)]
pub(super) enum IdCommand {
    /// Validate citizen ID numbers; exits non-zero if any is invalid.
    Check { ids: Vec<String> },
    /// Convert a legacy 15-digit ID to the 18-character form.
    Upgrade { id: String },
}

#[derive(Debug, Args)]
pub(super) struct DemoDataArgs {
    #[arg(long, default_value_t = 10_000)]
    citizens: usize,
    #[arg(long, default_value_t = 2016)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    /// Department code: ps, edu, hrss, ca, housing, land or tax.
    department: Department,
    file: PathBuf,
    #[arg(long, default_value = "civex-data")]
    data: PathBuf,
    /// Import into the deployment's PostgreSQL database instead (`postgres://…`).
    #[arg(long, env = "CIVEX_STORAGE_URL", conflicts_with = "data")]
    storage: Option<String>,
}

pub(super) fn certs_init(dir: &Path, force: bool) -> anyhow::Result<()> {
    if dir.join("ca.pem").exists() && !force {
        anyhow::bail!("{} already holds a CA; pass --force to replace it", dir.display());
    }
    init_certs(dir)?;
    println!("wrote the development PKI to {}", dir.display());
    Ok(())
}

/// Writes the dev PKI for the demo agencies into `dir`.
pub(super) fn init_certs(dir: &Path) -> anyhow::Result<()> {
    let codes = config::demo_agency_codes();
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    pki::init_dir(dir, &codes).with_context(|| format!("cannot write the PKI to {}", dir.display()))
}

pub(super) fn id(command: IdCommand) -> anyhow::Result<()> {
    match command {
        IdCommand::Check { ids } => {
            let mut bad = 0;
            for id in &ids {
                match citizen_id::CitizenId::parse(id) {
                    Ok(parsed) => println!(
                        "{}: valid (division {}, born {}, {})",
                        parsed.as_str(),
                        parsed.division(),
                        parsed.birth_date(),
                        if parsed.is_male() { "male" } else { "female" }
                    ),
                    Err(e) => {
                        bad += 1;
                        println!("{id}: invalid: {e}");
                    }
                }
            }
            anyhow::ensure!(bad == 0, "{bad} of {} IDs are invalid", ids.len());
            Ok(())
        }
        IdCommand::Upgrade { id } => {
            let upgraded = citizen_id::upgrade_legacy(&id)?;
            println!("{}", upgraded.as_str());
            Ok(())
        }
    }
}

pub(super) fn demo_data(args: DemoDataArgs) -> anyhow::Result<()> {
    let samples = demo_data::generate(args.citizens, args.seed, &args.out)
        .with_context(|| format!("cannot write demo data to {}", args.out.display()))?;
    println!("wrote {} citizens to {}", args.citizens, args.out.display());
    for s in samples {
        println!("  {}  {}", s.citizen_id, s.label);
    }
    Ok(())
}

pub(super) fn import(args: ImportArgs) -> anyhow::Result<()> {
    let registries = match &args.storage {
        Some(url) => store::postgres::open(url)?.registries,
        None => store::open_registries(&args.data)?,
    };
    let count = import_file(registries.as_ref(), args.department, &args.file)?;
    println!(
        "imported {count} {} records from {}",
        args.department,
        args.file.display()
    );
    Ok(())
}

/// Imports one department's JSONL file into `registries`, with a progress bar on a terminal.
pub(super) fn import_file(
    registries: &dyn RegistryStore,
    department: Department,
    file: &Path,
) -> anyhow::Result<usize> {
    let opened = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let bar = indicatif::ProgressBar::new(opened.metadata()?.len());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(department.to_string());
    let count = importer::import(registries, department, BufReader::new(bar.wrap_read(opened)))
        .with_context(|| format!("import of {} refused", file.display()))?;
    bar.finish_and_clear();
    Ok(count)
}

/// Prints the verifier key of the gateway whose data directory is `data`;
/// never creates a key (a new one would make every earlier checkpoint look forged).
pub(super) fn keys(data: &Path) -> anyhow::Result<()> {
    let file = data.join(civex_audit::keys::VERIFIER_KEY_FILE);
    anyhow::ensure!(
        file.exists(),
        "no gateway verifier key at {} (a gateway writes it there on first start; give --data of that gateway)",
        file.display()
    );
    println!("{}", verifier_key(&file.display().to_string())?.verifier_key());
    Ok(())
}

/// A verifier key given as the key itself (as the demo's banner prints
/// it), a file holding it, or a gateway's data directory (its `gateway.vkey`).
pub(crate) fn verifier_key(given: &str) -> anyhow::Result<civex_audit::keys::Verifier> {
    use civex_audit::keys::{VERIFIER_KEY_FILE, Verifier};
    if let Ok(key) = Verifier::parse(given) {
        return Ok(key);
    }
    let path = Path::new(given);
    let file = if path.is_dir() {
        path.join(VERIFIER_KEY_FILE)
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file).with_context(|| {
        if path.is_dir() || !path.exists() {
            format!(
                "no gateway verifier key at {} (a gateway writes it there on first start; give its --data, the key file or the key)",
                file.display()
            )
        } else {
            format!("cannot read {}", file.display())
        }
    })?;
    Verifier::parse(&text).with_context(|| format!("{} does not hold a verifier key", file.display()))
}
