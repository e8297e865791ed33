//! `civex agency …`: administration through the Admin API with the admin certificate.

use std::path::PathBuf;

use anyhow::Context;
use civex_proto::v1::{
    AccessRight, Agency, AgencyRef, AgencyStatus, IssueCertificateRequest, ListAgenciesRequest,
    ListCertificatesRequest, ListCertificatesResponse, RateLimit, RevokeCertificateRequest, Role,
    SetAccessRightsRequest, admin_service_client::AdminServiceClient,
};
use clap::{Args, Subcommand};
use tonic::transport::Channel;

use crate::conn::{Conn, Role as ConnRole, rpc_error};

/// A new agency's fields.
#[derive(Debug, Args)]
pub(super) struct AgencyFields {
    /// The code its certificates name (`spiffe://civex/agency/<code>`), e.g. `qujing-newagency`.
    #[arg(long)]
    code: String,
    /// Its full name, e.g. `曲靖市住房保障中心`.
    #[arg(long)]
    name: String,
    /// ps, edu, hrss, ca, housing, land, tax or other.
    #[arg(long)]
    department: String,
    /// requester, consent_registrar, auditor or admin; repeat for several.
    #[arg(long = "role", required = true)]
    roles: Vec<String>,
    /// `scope=purpose[,purpose…]`; repeat for several.
    #[arg(long = "right")]
    rights: Vec<String>,
    /// `per_second/burst` (default: the gateway's).
    #[arg(long)]
    rate: Option<String>,
}

impl AgencyFields {
    fn agency(self) -> anyhow::Result<Agency> {
        Ok(Agency {
            code: self.code,
            name: self.name,
            department: self.department,
            roles: self
                .roles
                .iter()
                .map(|r| parse_role(r))
                .collect::<anyhow::Result<_>>()?,
            rights: self
                .rights
                .iter()
                .map(|r| parse_right(r))
                .collect::<anyhow::Result<_>>()?,
            rate: parse_rate(&self.rate)?,
            ..Agency::default()
        })
    }
}

/// What `agency update` changes; what is not given stays as it is.
#[derive(Debug, Args)]
pub(super) struct AgencyChanges {
    #[arg(long)]
    code: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    department: Option<String>,
    /// Replaces the roles: requester, consent_registrar, auditor or admin; repeat for several.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Replaces every right (`agency rights` changes them one by one); repeat for several.
    #[arg(long = "right")]
    rights: Vec<String>,
    /// `per_second/burst`.
    #[arg(long)]
    rate: Option<String>,
}

impl AgencyChanges {
    fn apply(self, mut agency: Agency) -> anyhow::Result<Agency> {
        agency.name = self.name.unwrap_or(agency.name);
        agency.department = self.department.unwrap_or(agency.department);
        if !self.roles.is_empty() {
            agency.roles = self
                .roles
                .iter()
                .map(|r| parse_role(r))
                .collect::<anyhow::Result<_>>()?;
        }
        if !self.rights.is_empty() {
            agency.rights = self
                .rights
                .iter()
                .map(|r| parse_right(r))
                .collect::<anyhow::Result<_>>()?;
        }
        agency.rate = parse_rate(&self.rate)?.or(agency.rate);
        Ok(agency)
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum AgencyCommand {
    /// Register a new agency: `--role requester --right 'tax.*=tax.admin' --rate 10/20`.
    /// Refused if its code is taken: `agency update` changes an agency.
    Add {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        fields: AgencyFields,
    },
    /// Change an existing agency: the name, department, roles, rights or rate given; the rest stays.
    Update {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        changes: AgencyChanges,
    },
    /// List every agency.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one agency.
    Show {
        #[command(flatten)]
        conn: Conn,
        code: String,
    },
    /// Suspend an agency: its next call is refused, on any connection.
    Suspend {
        #[command(flatten)]
        conn: Conn,
        code: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Reinstate a suspended agency.
    Reinstate {
        #[command(flatten)]
        conn: Conn,
        code: String,
    },
    /// Change an agency's access rights: `--add` and `--remove` one by one,
    /// or `--replace` them all with the `--right`s given (none: no rights left);
    /// and its rate with `--rate`.
    Rights {
        #[command(flatten)]
        conn: Conn,
        code: String,
        /// `scope=purpose[,purpose…]` to add (purposes merge into a scope held); repeat for several.
        #[arg(long, conflicts_with = "replace")]
        add: Vec<String>,
        /// A scope to take away; repeat for several.
        #[arg(long, conflicts_with = "replace")]
        remove: Vec<String>,
        /// Replace every right with exactly the `--right`s given.
        #[arg(long)]
        replace: bool,
        /// With --replace: `scope=purpose[,purpose…]`; repeat for several.
        #[arg(long = "right", requires = "replace")]
        rights: Vec<String>,
        /// `per_second/burst`.
        #[arg(long)]
        rate: Option<String>,
    },
    /// Sign an agency's CSR (made with `civex certs csr`) and write the certificate.
    IssueCert {
        #[command(flatten)]
        conn: Conn,
        code: String,
        #[arg(long)]
        csr: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Revoke a certificate by serial (hex, either case).
    RevokeCert {
        #[command(flatten)]
        conn: Conn,
        serial: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// An agency's certificates: serial, end of validity, revocation.
    Certs {
        #[command(flatten)]
        conn: Conn,
        code: String,
    },
}

fn parse_role(s: &str) -> anyhow::Result<i32> {
    Ok(match s {
        "requester" => Role::Requester,
        "consent_registrar" => Role::ConsentRegistrar,
        "auditor" => Role::Auditor,
        "admin" => Role::Admin,
        "data_steward" => Role::DataSteward,
        other => anyhow::bail!("unknown role {other:?}: requester, consent_registrar, auditor, admin or data_steward"),
    } as i32)
}

fn parse_right(s: &str) -> anyhow::Result<AccessRight> {
    let (scope, purposes) = s
        .split_once('=')
        .with_context(|| format!("right {s:?} is not scope=purpose[,purpose]"))?;
    Ok(AccessRight {
        scope: scope.to_owned(),
        purposes: purposes.split(',').map(str::to_owned).collect(),
    })
}

fn parse_rate(s: &Option<String>) -> anyhow::Result<Option<RateLimit>> {
    s.as_deref()
        .map(|s| {
            let (rate, burst) = s.split_once('/').unwrap_or((s, "0"));
            Ok(RateLimit {
                per_second: rate.parse().context("rate")?,
                burst: burst.parse().context("burst")?,
            })
        })
        .transpose()
}

fn print_agency(a: &Agency) {
    let roles: Vec<String> = a
        .roles
        .iter()
        .map(|r| {
            Role::try_from(*r)
                .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
                .unwrap_or_default()
        })
        .collect();
    let status =
        AgencyStatus::try_from(a.status).map(|s| s.as_str_name().trim_start_matches("AGENCY_STATUS_").to_lowercase());
    println!(
        "{}  {}  [{}]  roles {}  {}",
        a.code,
        a.name,
        a.department,
        roles.join(","),
        status.unwrap_or_default()
    );
    if let Some(rate) = &a.effective_rate {
        let own = a.rate.as_ref().is_some_and(|r| r.per_second > 0);
        match (rate.per_second, own) {
            (0, _) => println!("  rate unlimited (the gateway's default)"),
            (_, true) => println!("  rate {}/s burst {}", rate.per_second, rate.burst),
            (_, false) => println!(
                "  rate {}/s burst {} (the gateway's default)",
                rate.per_second, rate.burst
            ),
        }
    }
    for r in &a.rights {
        println!("  right {} for {}", r.scope, r.purposes.join(","));
    }
}

fn print_certificates(list: &ListCertificatesResponse) {
    println!("{:<34} {:<22} revoked", "serial", "valid until");
    let time = |t: &Option<prost_types::Timestamp>| t.as_ref().map_or("-".to_owned(), ToString::to_string);
    for c in &list.certificates {
        let revoked = match &c.revoked_at {
            Some(at) => format!("{at} {}", c.revocation_reason),
            None => "-".to_owned(),
        };
        println!("{:<34} {:<22} {revoked}", c.serial, time(&c.not_after));
    }
}

async fn client(conn: &Conn) -> anyhow::Result<AdminServiceClient<Channel>> {
    Ok(AdminServiceClient::new(conn.channel(ConnRole::Admin).await?))
}

pub(super) async fn run(command: AgencyCommand) -> anyhow::Result<()> {
    let agency_ref = |code: String| AgencyRef {
        code,
        reason: String::new(),
    };
    let (conn, agency) = match command {
        AgencyCommand::Add { conn, fields } => {
            let agency = client(&conn).await?.register_agency(fields.agency()?).await;
            (conn, agency)
        }
        AgencyCommand::Update { conn, changes } => {
            let mut client = client(&conn).await?;
            let current = client
                .get_agency(agency_ref(changes.code.clone()))
                .await
                .map_err(rpc_error)?
                .into_inner();
            let agency = client.update_agency(changes.apply(current)?).await;
            (conn, agency)
        }
        AgencyCommand::Show { conn, code } => {
            let agency = client(&conn).await?.get_agency(agency_ref(code)).await;
            (conn, agency)
        }
        AgencyCommand::Suspend { conn, code, reason } => {
            let agency = client(&conn).await?.suspend_agency(AgencyRef { code, reason }).await;
            (conn, agency)
        }
        AgencyCommand::Reinstate { conn, code } => {
            let agency = client(&conn).await?.reinstate_agency(agency_ref(code)).await;
            (conn, agency)
        }
        AgencyCommand::Rights {
            conn,
            code,
            add,
            remove,
            replace,
            rights,
            rate,
        } => {
            anyhow::ensure!(
                replace || !add.is_empty() || !remove.is_empty() || rate.is_some(),
                "say what changes: --add RIGHT, --remove SCOPE, --replace [--right RIGHT…] (no --right: no rights left), or --rate"
            );
            let parse = |rights: &[String]| {
                rights
                    .iter()
                    .map(|r| parse_right(r))
                    .collect::<anyhow::Result<Vec<_>>>()
            };
            anyhow::ensure!(
                !(replace && rights.is_empty() && rate.is_some()),
                "taking every right away and changing the rate are two commands: --replace alone, then --rate"
            );
            if let Some(right) = remove.iter().find(|r| r.contains('=')) {
                anyhow::bail!(
                    "--remove takes a scope ({}): to keep some of its purposes, remove it and --add scope=purposes",
                    right.split('=').next().unwrap_or_default()
                );
            }
            let request = SetAccessRightsRequest {
                agency_code: code,
                rights: parse(&rights)?,
                rate: parse_rate(&rate)?,
                add: parse(&add)?,
                remove,
            };
            let agency = client(&conn).await?.set_access_rights(request).await;
            (conn, agency)
        }
        AgencyCommand::List { conn } => {
            let list = client(&conn)
                .await?
                .list_agencies(ListAgenciesRequest {})
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&list, |list| list.agencies.iter().for_each(print_agency));
            return Ok(());
        }
        AgencyCommand::Certs { conn, code } => {
            let list = client(&conn)
                .await?
                .list_certificates(ListCertificatesRequest { agency_code: code })
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&list, print_certificates);
            return Ok(());
        }
        AgencyCommand::IssueCert { conn, code, csr, out } => {
            let csr_pem = std::fs::read_to_string(&csr).with_context(|| format!("cannot read {}", csr.display()))?;
            let issued = client(&conn)
                .await?
                .issue_certificate(IssueCertificateRequest {
                    agency_code: code,
                    csr_pem,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            std::fs::write(&out, &issued.cert_pem).with_context(|| format!("cannot write {}", out.display()))?;
            conn.show(&issued, |issued| {
                let until = issued.not_after.map(|t| t.to_string()).unwrap_or_default();
                println!(
                    "wrote {} (serial {}, valid until {until})",
                    out.display(),
                    issued.serial
                );
            });
            return Ok(());
        }
        AgencyCommand::RevokeCert { conn, serial, reason } => {
            let r = client(&conn)
                .await?
                .revoke_certificate(RevokeCertificateRequest { serial, reason })
                .await
                .map_err(rpc_error)?
                .into_inner();
            conn.show(&r, |r| {
                println!(
                    "revoked {} at {}",
                    r.serial,
                    r.revoked_at.map(|t| t.to_string()).unwrap_or_default()
                )
            });
            return Ok(());
        }
    };
    conn.show(&agency.map_err(rpc_error)?.into_inner(), print_agency);
    Ok(())
}

/// `civex certs csr`: the agency's side of onboarding.
#[derive(Debug, Args)]
pub(super) struct CsrArgs {
    #[arg(long)]
    agency: String,
    /// Where to write `<agency>.key` (mode 0600) and `<agency>.csr`.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

pub(super) fn csr(args: CsrArgs) -> anyhow::Result<()> {
    let (csr_pem, key_pem) = crate::pki::make_csr(&args.agency)?;
    std::fs::create_dir_all(&args.dir)?;
    let key = args.dir.join(format!("{}.key", args.agency));
    let csr = args.dir.join(format!("{}.csr", args.agency));
    crate::pki::write_private(&key, key_pem.as_bytes())?;
    std::fs::write(&csr, csr_pem)?;
    println!(
        "wrote {} and {}; send only the CSR to the civex administrator",
        key.display(),
        csr.display()
    );
    Ok(())
}
