//! The flags of the API commands (`beamd tokens|tunnels|usage|requests|domains`,
//! and the API and key every one of them takes), and the commands they make.

use std::path::PathBuf;

use crate::client::commands::{DomainsCmd, TokensCmd, TunnelsCmd};
use crate::client::requests::RequestsCmd;
use crate::client::ApiSettings;

/// Where the API is and which key to use: shared by every API command.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// The edge's API, http://HOST:PORT.
    #[arg(
        long,
        env = "BEAMD_API",
        default_value = "http://127.0.0.1:4040",
        global = true
    )]
    pub api: String,
    /// The API key, tok_<id>.<secret>.
    #[arg(long, env = "BEAMD_KEY", hide_env_values = true, global = true)]
    pub key: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl From<ApiArgs> for ApiSettings {
    fn from(a: ApiArgs) -> Self {
        ApiSettings {
            api: a.api,
            key: a.key,
            json: a.json,
        }
    }
}

/// `beamd tokens …`.
#[derive(Debug, clap::Subcommand)]
pub enum TokensArgs {
    /// List the tenant's keys (never their secrets).
    List,
    /// Mint a key; its secret is printed once.
    Create {
        /// Label (≤ 80 characters).
        #[arg(long)]
        label: Option<String>,
        /// agent (opens tunnels, reads the API) or api.
        #[arg(long, default_value = "agent")]
        kind: String,
        /// A scope: read, manage or admin (repeat for several; default read).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Byte limit (up + down).
        #[arg(long)]
        limit_bytes: Option<u64>,
    },
    /// Revoke a key.
    Revoke {
        /// The key id, tok_….
        id: String,
    },
}

impl From<TokensArgs> for TokensCmd {
    fn from(a: TokensArgs) -> Self {
        match a {
            TokensArgs::List => TokensCmd::List,
            TokensArgs::Create {
                label,
                kind,
                scopes,
                limit_bytes,
            } => TokensCmd::Create {
                label,
                kind,
                scopes,
                limit_bytes,
            },
            TokensArgs::Revoke { id } => TokensCmd::Revoke { id },
        }
    }
}

/// `beamd tunnels …`.
#[derive(Debug, clap::Subcommand)]
pub enum TunnelsArgs {
    /// List the tenant's tunnels.
    List,
    /// Release a tunnel: its name or port is free again.
    Release {
        /// The tunnel id, tun_….
        id: String,
    },
}

impl From<TunnelsArgs> for TunnelsCmd {
    fn from(a: TunnelsArgs) -> Self {
        match a {
            TunnelsArgs::List => TunnelsCmd::List,
            TunnelsArgs::Release { id } => TunnelsCmd::Release { id },
        }
    }
}

/// `beamd domains …`.
#[derive(Debug, clap::Subcommand)]
pub enum DomainsArgs {
    /// List custom domains and their state.
    List,
    /// Add a domain; prints the TXT record to publish.
    Add {
        /// The host name.
        host: String,
    },
    /// Look up the domain's TXT record now.
    Verify {
        /// The domain id, dom_….
        id: String,
    },
    /// Remove a domain (it stops routing at once).
    Remove {
        /// The domain id, dom_….
        id: String,
    },
}

impl From<DomainsArgs> for DomainsCmd {
    fn from(a: DomainsArgs) -> Self {
        match a {
            DomainsArgs::List => DomainsCmd::List,
            DomainsArgs::Add { host } => DomainsCmd::Add { host },
            DomainsArgs::Verify { id } => DomainsCmd::Verify { id },
            DomainsArgs::Remove { id } => DomainsCmd::Remove { id },
        }
    }
}

/// `beamd requests show|replay`.
#[derive(Debug, clap::Subcommand)]
pub enum RequestsArgs {
    /// One request in detail: metadata, headers and bodies (with full capture).
    Show {
        /// Its req_… id (as `beamd requests` lists it) or its seq.
        id: String,
    },
    /// Send a request captured in full again through its tunnel, as
    /// captured or edited, and print the service's answer. Masked
    /// credentials are not resent: give them with --header.
    Replay {
        /// Its req_… id or its seq.
        id: String,
        /// Another method.
        #[arg(long, short = 'X')]
        method: Option<String>,
        /// Another path and query.
        #[arg(long)]
        path: Option<String>,
        /// Set a header, "Name: value" (repeatable); "Name:" with no value removes it.
        #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// Send this file's bytes as the body.
        #[arg(long, value_name = "FILE")]
        body_file: Option<PathBuf>,
    },
}

impl From<RequestsArgs> for RequestsCmd {
    fn from(a: RequestsArgs) -> Self {
        match a {
            RequestsArgs::Show { id } => RequestsCmd::Show { id },
            RequestsArgs::Replay {
                id,
                method,
                path,
                headers,
                body_file,
            } => RequestsCmd::Replay {
                id,
                method,
                path,
                headers,
                body_file,
            },
        }
    }
}
