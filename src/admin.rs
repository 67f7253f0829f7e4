//! `kizuna admin …`: the same use cases as the REST admin API, run directly
//! against the database by whoever holds the server's configuration. Output is
//! JSON on stdout. Passwords come from an environment variable or stdin, never
//! from the command line (which other users can see in `ps`).

use crate::serve::{CaMode, build_service};
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kizuna_domain::text::Name;
use kizuna_domain::*;
use kizuna_service::Caller;
use kizuna_service::admin::NewAccount;
use secrecy::SecretString;

/// `kizuna admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a facility.
    CreateFacility {
        /// Facility name.
        #[arg(long)]
        name: String,
        /// Let its staff log in with a password only (default: a client
        /// certificate and a password).
        #[arg(long)]
        password_only: bool,
    },
    /// Change a facility's policy; rules not given stay as they are.
    SetFacilityPolicy {
        /// Facility id.
        #[arg(long)]
        facility: i64,
        /// true: certificate and password; false: password only.
        #[arg(long, action = clap::ArgAction::Set)]
        require_client_cert: Option<bool>,
        /// Who may register patients: staff or admins.
        #[arg(long)]
        patient_group_creators: Option<PatientGroupCreators>,
        /// Staff joining other facilities' patient groups: never,
        /// admin_approval or allowed.
        #[arg(long)]
        staff_join_other_facilities: Option<CrossFacility>,
        /// Outsiders invited into this facility's patient groups: never,
        /// admin_approval or allowed.
        #[arg(long)]
        outside_invitations: Option<CrossFacility>,
        /// Whether the family timeline is in use.
        #[arg(long, action = clap::ArgAction::Set)]
        family_timeline: Option<bool>,
        /// Notification hours, HH:MM-HH:MM Japan time, or "any".
        #[arg(long)]
        notification_hours: Option<String>,
    },
    /// Create an account. The password is read from the environment variable
    /// named by --password-env (default KIZUNA_NEW_PASSWORD), or from stdin
    /// with --password-stdin.
    CreateUser {
        /// Login name.
        #[arg(long)]
        login: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// staff, patient, family, company or operator.
        #[arg(long)]
        kind: UserKind,
        /// Facility id (staff and patients).
        #[arg(long)]
        facility: Option<i64>,
        /// Profession (staff).
        #[arg(long)]
        profession: Option<Profession>,
        /// Role in the facility (staff): admin or staff.
        #[arg(long)]
        role: Option<FacilityRole>,
        /// Environment variable holding the password.
        #[arg(long, default_value = "KIZUNA_NEW_PASSWORD")]
        password_env: String,
        /// Read the password from the first line of stdin instead.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Register a patient and create their patient group (team + family timelines).
    CreatePatient {
        /// Facility id.
        #[arg(long)]
        facility: i64,
        /// Patient's name.
        #[arg(long)]
        name: String,
        /// Login of the staff member who owns the group.
        #[arg(long)]
        owner: String,
    },
    /// Create a free group or a community.
    CreateGroup {
        /// free or community.
        #[arg(long)]
        kind: GroupKind,
        /// Group name.
        #[arg(long)]
        name: String,
        /// Login of the owner.
        #[arg(long)]
        owner: String,
    },
    /// Add a member to a group.
    AddMember {
        /// Group id.
        #[arg(long)]
        group: i64,
        /// Login of the new member.
        #[arg(long)]
        user: String,
        /// owner, moderator or member.
        #[arg(long, default_value = "member")]
        role: GroupRole,
    },
    /// Remove a member from a group.
    RemoveMember {
        /// Group id.
        #[arg(long)]
        group: i64,
        /// Login of the member.
        #[arg(long)]
        user: String,
    },
    /// Show a group with its timelines and members.
    ShowGroup {
        /// Group id.
        #[arg(long)]
        group: i64,
    },
    /// Disable an account: ends its sessions; what it wrote stays.
    DisableUser {
        /// Login.
        #[arg(long)]
        user: String,
    },
    /// Re-enable an account.
    EnableUser {
        /// Login.
        #[arg(long)]
        user: String,
    },
    /// Verify the audit trail's hash chain.
    VerifyAudit,
    /// Print audit entries (JSON lines), oldest first.
    Audit {
        /// Only this action (e.g. `auth.login`, `timeline.read`, `cert.revoke`).
        #[arg(long)]
        action: Option<String>,
        /// Only entries about this patient.
        #[arg(long)]
        patient: Option<i64>,
        /// Only entries by this actor (user id).
        #[arg(long)]
        actor: Option<i64>,
        /// Entries after this id.
        #[arg(long)]
        after: Option<i64>,
        /// At most this many (≤ 1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

fn name(s: String, what: &str) -> Result<Name> {
    Name::parse(s).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

fn password(env: &str, stdin: bool) -> Result<SecretString> {
    let raw = if stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        std::env::var(env).with_context(|| {
            format!("set the password in the environment variable {env} (or use --password-stdin)")
        })?
    };
    if raw.is_empty() {
        bail!("empty password");
    }
    Ok(SecretString::from(raw))
}

fn print(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// Runs one admin command.
pub async fn run(settings: Settings, cmd: AdminCommand) -> Result<()> {
    let svc = build_service(&settings, CaMode::None).await?;
    let cli = Caller::Cli;
    let user_id = |login: String| {
        let svc = svc.clone();
        async move {
            svc.user_by_login(login)
                .await
                .map(|u| u.id)
                .map_err(|_| anyhow::anyhow!("no such user"))
        }
    };
    match cmd {
        AdminCommand::CreateFacility {
            name: n,
            password_only,
        } => print(
            &svc.create_facility(cli, name(n, "name")?, !password_only)
                .await?,
        )?,
        AdminCommand::SetFacilityPolicy {
            facility,
            require_client_cert,
            patient_group_creators,
            staff_join_other_facilities,
            outside_invitations,
            family_timeline,
            notification_hours,
        } => {
            let notification_hours = match notification_hours.as_deref() {
                None => None,
                Some("any") => Some(None),
                Some(h) => Some(Some(h.parse::<NotificationHours>()?)),
            };
            let change = kizuna_service::admin::PolicyChange {
                patient_group_creators,
                staff_join_other_facilities,
                outside_invitations,
                family_timeline,
                require_client_cert,
                notification_hours,
            };
            print(
                &svc.set_facility_policy(cli, FacilityId(facility), change)
                    .await?,
            )?
        }
        AdminCommand::CreateUser {
            login,
            name: n,
            kind,
            facility,
            profession,
            role,
            password_env,
            password_stdin,
        } => {
            let new = NewAccount {
                login,
                display_name: name(n, "name")?,
                kind,
                profession,
                facility_id: facility.map(FacilityId),
                facility_role: role,
                password: password(&password_env, password_stdin)?,
            };
            print(&svc.create_user(cli, new).await?)?
        }
        AdminCommand::CreatePatient {
            facility,
            name: n,
            owner,
        } => {
            let owner = user_id(owner).await?;
            print(
                &svc.create_patient(cli, FacilityId(facility), name(n, "name")?, Some(owner))
                    .await?,
            )?
        }
        AdminCommand::CreateGroup {
            kind,
            name: n,
            owner,
        } => {
            let owner = user_id(owner).await?;
            print(
                &svc.create_group(cli, kind, name(n, "name")?, Some(owner))
                    .await?,
            )?
        }
        AdminCommand::AddMember { group, user, role } => {
            let user = user_id(user).await?;
            print(&svc.add_member(cli, GroupId(group), user, role).await?)?
        }
        AdminCommand::RemoveMember { group, user } => {
            let user = user_id(user).await?;
            svc.remove_member(cli, GroupId(group), user).await?;
            print(&serde_json::json!({"removed": true}))?
        }
        AdminCommand::ShowGroup { group } => print(&svc.group(cli, GroupId(group)).await?)?,
        AdminCommand::DisableUser { user } => {
            let user = user_id(user).await?;
            svc.set_user_status(cli, user, UserStatus::Disabled).await?;
            print(&serde_json::json!({"disabled": true}))?
        }
        AdminCommand::EnableUser { user } => {
            let user = user_id(user).await?;
            svc.set_user_status(cli, user, UserStatus::Active).await?;
            print(&serde_json::json!({"enabled": true}))?
        }
        AdminCommand::Audit {
            action,
            patient,
            actor,
            after,
            limit,
        } => {
            let filter = kizuna_store::audit::AuditFilter {
                actor_user_id: actor,
                patient_id: patient,
                action,
                after_id: after,
                limit: Some(limit),
                ..Default::default()
            };
            for entry in svc.audit_entries(cli, filter).await? {
                println!("{}", serde_json::to_string(&entry)?);
            }
        }
        AdminCommand::VerifyAudit => {
            let checked = svc.verify_audit().await?;
            print(&serde_json::json!({"audit_chain": "intact", "entries": checked}))?
        }
    }
    svc.bus().shutdown().await;
    Ok(())
}
