//! The flags of the commands that read and check the log: `beamd replay`,
//! `beamd audit`, `beamd checkpoint` and `beamd verify-proof`, and the
//! settings they make.

use std::path::PathBuf;

use clap::ValueEnum;

use super::client::ApiArgs;
use crate::audit::AuditSettings;
use crate::data_dir::DEFAULT_DATA_DIR;
use crate::replay::{ReplayFormat, ReplaySettings};

/// Output formats of `beamd replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplayFormatArg {
    /// One JSON object per line.
    Json,
    /// One human-readable line per event.
    Text,
}

/// Options of `beamd replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The data directory to read.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Read this NATS JetStream log instead of the data dir's sled log.
    #[arg(long, value_name = "nats://HOST:PORT[,HOST:PORT…]")]
    pub log: Option<String>,
    /// First seq to print.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Last seq to print.
    #[arg(long)]
    pub to: Option<u64>,
    /// Only the events of this stream (a tenant, key, tunnel, domain or node id).
    #[arg(long)]
    pub stream: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub format: ReplayFormatArg,
}

impl From<ReplayFormatArg> for ReplayFormat {
    fn from(f: ReplayFormatArg) -> Self {
        match f {
            ReplayFormatArg::Json => ReplayFormat::Json,
            ReplayFormatArg::Text => ReplayFormat::Text,
        }
    }
}

impl From<ReplayArgs> for ReplaySettings {
    fn from(a: ReplayArgs) -> Self {
        ReplaySettings {
            data_dir: a.data_dir,
            log: a.log,
            from: a.from,
            to: a.to,
            stream: a.stream,
            format: a.format.into(),
        }
    }
}

/// Options of `beamd audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The data directory to verify.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Verify this NATS JetStream log instead of the data dir's sled log (its records; snapshots
    /// and the Merkle tree are local to each edge and are not checked).
    #[arg(long, value_name = "nats://HOST:PORT[,HOST:PORT…]")]
    pub log: Option<String>,
    /// Also prove the log extends a checkpoint saved earlier (a checkpoint
    /// file, or a `beamd checkpoint --save` directory, whose tiles let the
    /// audit name the first changed seq).
    #[arg(long, value_name = "PATH")]
    pub since: Option<PathBuf>,
    /// The log's verifier key for --since (text or file) [default: the one saved beside the
    /// checkpoint, else the data dir's log-signing.pub].
    #[arg(long, value_name = "KEY|FILE")]
    pub public_key: Option<String>,
    /// Witnesses whose cosignatures the --since checkpoint must carry.
    #[command(flatten)]
    pub witnesses: QuorumArgs,
}

/// `--witness-key` and `--quorum`, wherever a checkpoint is trusted.
#[derive(Debug, Clone, clap::Args)]
pub struct QuorumArgs {
    /// A witness's verifier key (`name+id+base64`, type 0x04), or a file
    /// holding it; repeat for several. The checkpoint counts only with
    /// --quorum valid cosignatures from these keys.
    #[arg(long = "witness-key", value_name = "KEY|FILE")]
    pub witness_keys: Vec<String>,
    /// How many of the --witness-key witnesses must have cosigned [default: all].
    #[arg(long, value_name = "N", requires = "witness_keys")]
    pub quorum: Option<usize>,
}

impl QuorumArgs {
    /// The quorum these ask for.
    pub fn quorum(&self) -> anyhow::Result<crate::tlog::Quorum> {
        crate::tlog::Quorum::parse(&self.witness_keys, self.quorum)
    }
}

impl TryFrom<AuditArgs> for AuditSettings {
    type Error = anyhow::Error;
    fn try_from(a: AuditArgs) -> anyhow::Result<Self> {
        let quorum = a.witnesses.quorum()?;
        if !quorum.witnesses.is_empty() && a.since.is_none() {
            anyhow::bail!("--witness-key checks the --since checkpoint: give --since");
        }
        Ok(AuditSettings {
            data_dir: a.data_dir,
            log: a.log,
            since: a.since,
            public_key: a.public_key,
            quorum,
        })
    }
}

/// `beamd checkpoint`.
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// Also save the checkpoint, the verifier key and the tree's tiles at its
    /// size into DIR, for `beamd audit --since DIR` later.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
    /// Witnesses whose cosignatures the checkpoint must carry.
    #[command(flatten)]
    pub witnesses: QuorumArgs,
    /// The API and key.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `beamd witness`.
#[derive(Debug, clap::Args)]
pub struct WitnessArgs {
    /// Where the witness keeps its key (witness.key, 0600; witness.pub) and
    /// the last checkpoint it cosigned of each log.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Where it serves POST /add-checkpoint (C2SP tlog-witness).
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// A log it witnesses: ORIGIN=VKEY, the log's verifier key (an edge's
    /// log-signing.pub); repeat for several.
    #[arg(long = "log", value_name = "ORIGIN=VKEY", required = true)]
    pub logs: Vec<String>,
    /// The witness's name when its key is made (a URL without scheme, e.g.
    /// witness.example.com/w1); later runs must give the same or none.
    #[arg(long)]
    pub name: Option<String>,
}

impl From<WitnessArgs> for crate::witness::WitnessSettings {
    fn from(a: WitnessArgs) -> Self {
        crate::witness::WitnessSettings {
            data_dir: a.data_dir,
            listen: a.listen,
            logs: a.logs,
            name: a.name,
        }
    }
}

/// `beamd verify-proof`.
#[derive(Debug, clap::Args)]
pub struct VerifyProofArgs {
    /// The proof bundle: the JSON of GET /api/v1/log/proof/inclusion?seq=N.
    pub bundle: PathBuf,
    /// The log's verifier key (`name+id+base64`), or a file holding it.
    #[arg(long, value_name = "KEY|FILE")]
    pub public_key: String,
    /// A checkpoint saved earlier (file or `checkpoint --save` directory) to
    /// check against instead of the one in the bundle; sizes must match.
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,
    /// Witnesses whose cosignatures the checkpoint must carry.
    #[command(flatten)]
    pub witnesses: QuorumArgs,
}
