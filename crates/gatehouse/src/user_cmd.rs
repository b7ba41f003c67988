//! `gatehouse user add|list|delete|passwd`: the built-in accounts people sign
//! in with. Passwords come from the terminal (asked twice) or from the first
//! line of standard input when it is not a terminal (docs/decisions.md
//! "Configuration and CLI"); they are hashed with argon2id and never printed,
//! logged or stored in any other form.

use crate::Common;
use crate::open_store_for;
use crate::output::{Format, print};
use clap::Subcommand;
use gatehouse_oauth::StoreError;
use gatehouse_oauth::clock::system_now as now;
use gatehouse_oauth::grant_records::User;
use gatehouse_oauth::people::accounts::{
    hash_password, new_user_id, validate_groups, validate_password, validate_user_name,
};
use gatehouse_oauth::store::Store;
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account; asks for its password.
    Add {
        #[command(flatten)]
        common: Common,
        /// Sign-in name ([a-z0-9._@-]{1,64}).
        name: String,
        /// A group the user belongs to (repeatable); tokens carry them as
        /// `groups`, Cedar policies see them as `Group`s.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// An account that signs in at an identity provider instead of with
        /// a password: PROVIDER:SUBJECT (the provider's id in
        /// `[[people.providers]]`, the person's `sub` there). No password is
        /// asked.
        #[arg(long = "link", value_name = "PROVIDER:SUBJECT")]
        link: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List accounts (never password material).
    List {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete an account: its sessions end, its consents are forgotten and
    /// every grant it made is revoked (with the access tokens issued from
    /// them).
    Delete {
        #[command(flatten)]
        common: Common,
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the consents an account has given (client, MCP server, scopes).
    Consents {
        #[command(flatten)]
        common: Common,
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Withdraw an account's consent for a client: the client must ask
    /// again, and every grant the account gave it is revoked (with the
    /// access tokens issued from them).
    Revoke {
        #[command(flatten)]
        common: Common,
        name: String,
        /// The client whose consent is withdrawn.
        #[arg(long = "client", value_name = "CLIENT_ID")]
        client_id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Set a new password; the account's browser sessions end and its
    /// grants are revoked.
    Passwd {
        #[command(flatten)]
        common: Common,
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

fn view(u: &User) -> Value {
    json!({ "id": u.id, "name": u.name, "groups": u.groups, "created_at": u.created_at })
}

/// A new password: asked twice on a terminal, or the first line of stdin.
fn read_new_password() -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Password again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords do not match".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    validate_password(&password)?;
    Ok(password)
}

/// argon2id off the async runtime.
async fn hash(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| e.to_string())?
}

async fn find(store: &dyn Store, name: &str) -> Result<User, String> {
    store
        .get_user_by_name(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user named {name:?}"))
}

pub async fn run(command: UserCommand) -> Result<(), String> {
    match command {
        UserCommand::Add {
            common,
            name,
            groups,
            link,
            format,
        } => add(&common, name, groups, link, format).await,
        UserCommand::List { common, format } => {
            let store = open_store_for(&common).await?;
            let users = store.list_users().await.map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for u in &users {
                let mut v = view(u);
                // Identities at upstream providers, by provider and subject
                // (never by email: that is not what links them).
                let links = store
                    .list_linked_identities(&u.id)
                    .await
                    .map_err(|e| e.to_string())?;
                if !links.is_empty() {
                    v["linked"] = links
                        .iter()
                        .map(|l| {
                            json!({"provider": l.provider, "subject": l.subject,
                                   "email": l.email, "last_sign_in_at": l.last_sign_in_at})
                        })
                        .collect();
                }
                out.push(v);
            }
            print(&Value::Array(out), format)
        }
        UserCommand::Delete {
            common,
            name,
            format,
        } => {
            let store = open_store_for(&common).await?;
            let user = find(store.as_ref(), &name).await?;
            if store
                .delete_user(&user.id, now())
                .await
                .map_err(|e| e.to_string())?
            {
                print(&json!({ "deleted": user.name, "id": user.id }), format)
            } else {
                Err(format!("no user named {name:?}"))
            }
        }
        UserCommand::Consents {
            common,
            name,
            format,
        } => consents(&common, &name, format).await,
        UserCommand::Revoke {
            common,
            name,
            client_id,
            format,
        } => {
            let store = open_store_for(&common).await?;
            let user = find(store.as_ref(), &name).await?;
            let forgotten = store
                .revoke_consent(&user.id, &client_id, now())
                .await
                .map_err(|e| e.to_string())?;
            print(
                &json!({ "user": user.name, "client_id": client_id, "consents_withdrawn": forgotten }),
                format,
            )
        }
        UserCommand::Passwd {
            common,
            name,
            format,
        } => {
            let store = open_store_for(&common).await?;
            let user = find(store.as_ref(), &name).await?;
            if user.password_hash == gatehouse_oauth::people::federated_sign_in::NO_PASSWORD {
                return Err(format!(
                    "{name:?} signs in at an identity provider and has no password here"
                ));
            }
            let password = read_new_password()?;
            let phc = hash(password).await?;
            if store
                .set_user_password(&user.id, &phc, now())
                .await
                .map_err(|e| e.to_string())?
            {
                print(&json!({ "updated": user.name, "id": user.id }), format)
            } else {
                Err(format!("no user named {name:?}"))
            }
        }
    }
}

/// `user add`: a new account with a password read from the terminal (or
/// stdin), refused when the name is taken.
async fn add(
    common: &Common,
    name: String,
    groups: Vec<String>,
    link: Option<String>,
    format: Format,
) -> Result<(), String> {
    validate_user_name(&name)?;
    validate_groups(&groups)?;
    let link = match link.as_deref().map(|l| l.split_once(':')) {
        None => None,
        Some(Some((provider, subject)))
            if !provider.is_empty()
                && !subject.is_empty()
                && subject.len() <= gatehouse_oauth::people::federation::MAX_SUBJECT_BYTES =>
        {
            Some((provider.to_string(), subject.to_string()))
        }
        Some(_) => return Err("--link takes PROVIDER:SUBJECT (e.g. corp:248289761001)".into()),
    };
    let store = open_store_for(common).await?;
    if store
        .get_user_by_name(&name)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Err(format!("a user named {name:?} already exists"));
    }
    let password_hash = match &link {
        Some(_) => gatehouse_oauth::people::federated_sign_in::NO_PASSWORD.to_string(),
        None => hash(read_new_password()?).await?,
    };
    let user = User {
        id: new_user_id(),
        name: name.clone(),
        password_hash,
        groups,
        created_at: now(),
        credentials_gen: 0,
    };
    let stored = match &link {
        Some((provider, subject)) => {
            let identity = gatehouse_oauth::grant_records::LinkedIdentity {
                provider: provider.clone(),
                subject: subject.clone(),
                user_id: user.id.clone(),
                email: None,
                email_verified: false,
                linked_at: now(),
                last_sign_in_at: None,
            };
            match store.create_linked_user(&user, &identity).await {
                Ok(true) => Ok(()),
                Ok(false) => {
                    return Err(format!(
                        "{provider}:{subject} is already linked to another account"
                    ));
                }
                Err(e) => Err(e),
            }
        }
        None => store.insert_user(&user).await,
    };
    match stored {
        Ok(()) => {
            let mut v = view(&user);
            if let Some((provider, subject)) = &link {
                v["linked"] = json!([{"provider": provider, "subject": subject}]);
            }
            print(&v, format)
        }
        Err(StoreError::Conflict(_)) => Err(format!("a user named {name:?} already exists")),
        Err(e) => Err(e.to_string()),
    }
}

/// `user consents`: what the user has allowed, per client and resource.
async fn consents(common: &Common, name: &str, format: Format) -> Result<(), String> {
    let store = open_store_for(common).await?;
    let user = find(store.as_ref(), name).await?;
    let consents = store
        .list_consents(&user.id)
        .await
        .map_err(|e| e.to_string())?;
    let list: Vec<Value> = consents
        .iter()
        .map(|c| {
            json!({
                "client_id": c.client_id,
                "resource": c.resource,
                "scopes": c.scopes,
                "granted_at": c.granted_at,
            })
        })
        .collect();
    print(&Value::Array(list), format)
}
