//! C2SP tlog-checkpoint note text: the origin, the tree size and the base64
//! root hash, one per line.

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use beamd_events::merkle::TreeHash;

use super::note::Verifier;

/// A tree head: what a checkpoint's text says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity (the signing key's name).
    pub origin: String,
    /// How many events the tree holds.
    pub size: u64,
    /// Its RFC 6962 root.
    pub root: TreeHash,
}

impl Checkpoint {
    /// The note text.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a checkpoint's note text that may carry extension lines
    /// after the root (other logs' checkpoints, for a witness).
    pub fn parse_with_extensions(text: &str) -> Result<Self> {
        let mut lines = text.splitn(4, '\n');
        let (origin, size, root) = (lines.next(), lines.next(), lines.next());
        let (Some(origin), Some(size), Some(root)) = (origin, size, root) else {
            bail!("a checkpoint has an origin, a size and a root, a line each");
        };
        Self::parse(&format!("{origin}\n{size}\n{root}\n"))
    }

    /// Parses a checkpoint's note text (extension lines are refused: beamd writes none).
    pub fn parse(text: &str) -> Result<Self> {
        let body = text
            .strip_suffix('\n')
            .context("a checkpoint ends in a newline")?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root] = lines[..] else {
            bail!(
                "a checkpoint has three lines (origin, size, root), this one {}",
                lines.len()
            );
        };
        if origin.is_empty() {
            bail!("the checkpoint's origin is empty");
        }
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) {
            bail!("the checkpoint's size {size:?} is not a number without leading zeroes");
        }
        let size: u64 = size
            .parse()
            .with_context(|| format!("the checkpoint's size {size:?} is not a number"))?;
        let root: TreeHash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .context("the checkpoint's root is not a base64 SHA-256 hash")?;
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// A checkpoint with its signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What it says.
    pub checkpoint: Checkpoint,
    /// The signed note, as served.
    pub note: String,
}

impl SignedCheckpoint {
    /// Checks the note's signature with `verifier` and parses it; the origin
    /// must be the key's name.
    pub fn open(note: &str, verifier: &Verifier) -> Result<Self> {
        let text = verifier.open(note)?;
        let checkpoint = Checkpoint::parse(text)?;
        if checkpoint.origin != verifier.name() {
            bail!(
                "the checkpoint is for log {:?}, the key is {:?}'s",
                checkpoint.origin,
                verifier.name()
            );
        }
        Ok(Self {
            checkpoint,
            note: note.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_bad_text_is_refused() {
        let c = Checkpoint {
            origin: "beamd/node_1".into(),
            size: 20852163,
            root: [9; 32],
        };
        assert_eq!(Checkpoint::parse(&c.text()).unwrap(), c);
        for bad in [
            "o\n1\n",
            "o\n01\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
            "o\n1\nCQkJ\n",
            "\n1\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
            "o\n1\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
