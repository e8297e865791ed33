//! `civex agency …`: administration through the Admin API with the admin certificate.

use std::path::PathBuf;

use anyhow::Context;
use civex_proto::v1::{
    AccessRight, Agency, AgencyRef, AgencyStatus, IssueCertificateRequest, ListAgenciesRequest, RateLimit,
    RevokeCertificateRequest, Role, SetAccessRightsRequest, admin_service_client::AdminServiceClient,
};
use clap::{Args, Subcommand};
use tonic::transport::Channel;

use super::remote::{Conn, rpc_error};

const ADMIN: &str = "qujing-admin";

#[derive(Debug, Subcommand)]
pub(super) enum AgencyCommand {
    /// Register an agency (or update one): `--role requester --right 'tax.*=tax.admin' --rate 10/20`.
    Add {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        code: String,
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
        /// `per_second/burst`.
        #[arg(long)]
        rate: Option<String>,
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
    /// Replace an agency's access rights (and optionally its rate).
    Rights {
        #[command(flatten)]
        conn: Conn,
        code: String,
        #[arg(long = "right")]
        rights: Vec<String>,
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
    /// Revoke a certificate by serial (lower-case hex).
    RevokeCert {
        #[command(flatten)]
        conn: Conn,
        serial: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

fn parse_role(s: &str) -> anyhow::Result<i32> {
    Ok(match s {
        "requester" => Role::Requester,
        "consent_registrar" => Role::ConsentRegistrar,
        "auditor" => Role::Auditor,
        "admin" => Role::Admin,
        other => anyhow::bail!("unknown role {other:?}"),
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
    if let Some(rate) = &a.rate {
        println!("  rate {}/s burst {} (0 = default)", rate.per_second, rate.burst);
    }
    for r in &a.rights {
        println!("  right {} for {}", r.scope, r.purposes.join(","));
    }
}

async fn client(conn: &Conn) -> anyhow::Result<AdminServiceClient<Channel>> {
    Ok(AdminServiceClient::new(conn.channel(ADMIN).await?))
}

pub(super) async fn run(command: AgencyCommand) -> anyhow::Result<()> {
    match command {
        AgencyCommand::Add {
            conn,
            code,
            name,
            department,
            roles,
            rights,
            rate,
        } => {
            let agency = Agency {
                code,
                name,
                department,
                roles: roles.iter().map(|r| parse_role(r)).collect::<anyhow::Result<_>>()?,
                rights: rights.iter().map(|r| parse_right(r)).collect::<anyhow::Result<_>>()?,
                rate: parse_rate(&rate)?,
                status: 0,
            };
            print_agency(
                &client(&conn)
                    .await?
                    .register_agency(agency)
                    .await
                    .map_err(rpc_error)?
                    .into_inner(),
            );
        }
        AgencyCommand::List { conn } => {
            for a in client(&conn)
                .await?
                .list_agencies(ListAgenciesRequest {})
                .await
                .map_err(rpc_error)?
                .into_inner()
                .agencies
            {
                print_agency(&a);
            }
        }
        AgencyCommand::Show { conn, code } => {
            let all = client(&conn)
                .await?
                .list_agencies(ListAgenciesRequest {})
                .await
                .map_err(rpc_error)?
                .into_inner();
            let agency = all
                .agencies
                .iter()
                .find(|a| a.code == code)
                .with_context(|| format!("no agency {code:?}"))?;
            print_agency(agency);
        }
        AgencyCommand::Suspend { conn, code, reason } => {
            print_agency(
                &client(&conn)
                    .await?
                    .suspend_agency(AgencyRef { code, reason })
                    .await
                    .map_err(rpc_error)?
                    .into_inner(),
            );
        }
        AgencyCommand::Reinstate { conn, code } => {
            let r = AgencyRef {
                code,
                reason: String::new(),
            };
            print_agency(
                &client(&conn)
                    .await?
                    .reinstate_agency(r)
                    .await
                    .map_err(rpc_error)?
                    .into_inner(),
            );
        }
        AgencyCommand::Rights {
            conn,
            code,
            rights,
            rate,
        } => {
            let request = SetAccessRightsRequest {
                agency_code: code,
                rights: rights.iter().map(|r| parse_right(r)).collect::<anyhow::Result<_>>()?,
                rate: parse_rate(&rate)?,
            };
            print_agency(
                &client(&conn)
                    .await?
                    .set_access_rights(request)
                    .await
                    .map_err(rpc_error)?
                    .into_inner(),
            );
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
            let until = issued.not_after.map(|t| t.to_string()).unwrap_or_default();
            println!(
                "wrote {} (serial {}, valid until {until})",
                out.display(),
                issued.serial
            );
        }
        AgencyCommand::RevokeCert { conn, serial, reason } => {
            let r = client(&conn)
                .await?
                .revoke_certificate(RevokeCertificateRequest { serial, reason })
                .await
                .map_err(rpc_error)?
                .into_inner();
            println!(
                "revoked {} at {}",
                r.serial,
                r.revoked_at.map(|t| t.to_string()).unwrap_or_default()
            );
        }
    }
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
