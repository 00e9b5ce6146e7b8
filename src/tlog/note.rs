//! C2SP signed notes with Ed25519 (signature type 0x01): the edge's log key,
//! verifier keys (`<name>+<hex id>+<base64(0x01 || public key)>`) and signed
//! note text (`text`, a blank line, `— <name> <base64(id || signature)>`).
//! The key file uses the same encoding as Go's `note` package
//! (`PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};

/// The signature type byte of Ed25519 notes.
const ED25519_TYPE: u8 = 0x01;
pub(super) const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";
/// The longest note accepted for verification.
pub const MAX_NOTE: usize = 1 << 16;

/// The 32-bit key id: the first four bytes of SHA-256(name || '\n' || 0x01 || public key).
pub fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    typed_key_id(name, ED25519_TYPE, public)
}

/// The key id of a key of signature type `kind`: SHA-256(name || '\n' ||
/// kind || public key)[..4].
pub(super) fn typed_key_id(name: &str, kind: u8, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([kind]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Key text: `<name>+<hex id>+<base64(kind || 32 bytes)>` (a private key's
/// file puts `PRIVATE+KEY+` before it).
pub(super) fn encode_key(name: &str, id: u32, kind: u8, bytes: &[u8; 32]) -> String {
    let mut material = vec![kind];
    material.extend_from_slice(bytes);
    format!("{name}+{id:08x}+{}", B64.encode(material))
}

/// Reads key text of signature type `kind`: its valid name, id and 32 bytes.
pub(super) fn decode_key(text: &str, kind: u8) -> Result<(&str, u32, [u8; 32])> {
    let (name, id, material) = three_parts(text.trim())?;
    if !valid_name(name) {
        bail!("{name:?} is not a key name");
    }
    let bytes = B64.decode(material).context("the key is not base64")?;
    let key: [u8; 32] = match bytes.split_first() {
        Some((&k, key)) if k == kind => key.try_into().context("the key is not 32 bytes")?,
        Some((&other, _)) => {
            bail!("the key has signature type 0x{other:02x}, not 0x{kind:02x}")
        }
        None => bail!("the key is empty"),
    };
    Ok((name, id, key))
}

/// Reads the private key file at `path` with `parse` (one others can read
/// is refused), or writes a new one, `make`'s key and its text (mode 0600).
/// Returns the key and whether it was made.
pub(super) fn load_or_create_key<K>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<K>,
    make: impl FnOnce() -> Result<(K, String)>,
) -> Result<(K, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            refuse_open_permissions(path)?;
            let key =
                parse(text.trim()).with_context(|| format!("{} is not its key", path.display()))?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, text) = make()?;
            crate::data_dir::write_private(path, format!("{text}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok((key, true))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Whether `name` can name a key: non-empty, no spaces, no `+`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// The edge's signing key.
pub struct LogKey {
    name: String,
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl LogKey {
    /// A key from its 32-byte seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self> {
        if !valid_name(name) {
            bail!("{name:?} cannot name a log key: it must be non-empty, without spaces or '+'");
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| anyhow::anyhow!("not an Ed25519 seed"))?;
        Ok(Self {
            name: name.to_string(),
            seed,
            pair,
        })
    }

    /// A new random key.
    pub fn generate(name: &str) -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Self::from_seed(name, seed)
    }

    /// Reads the key file at `path`, or creates one (mode 0600) named `name`.
    /// Returns the key and whether it was created.
    pub fn load_or_create(path: &Path, name: &str) -> Result<(Self, bool)> {
        load_or_create_key(path, Self::parse, || {
            let key = Self::generate(name)?;
            let text = key.encode();
            Ok((key, text))
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    pub fn parse(text: &str) -> Result<Self> {
        let rest = text
            .strip_prefix(PRIVATE_PREFIX)
            .context("it does not start with PRIVATE+KEY+")?;
        let (name, id, seed) = decode_key(rest, ED25519_TYPE)?;
        let key = Self::from_seed(name, seed)?;
        if key.id() != id {
            bail!("the key id does not match the key");
        }
        Ok(key)
    }

    /// The key file's text.
    pub fn encode(&self) -> String {
        let key = encode_key(&self.name, self.id(), ED25519_TYPE, &self.seed);
        format!("{PRIVATE_PREFIX}{key}")
    }

    /// The key's name (the checkpoints' origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn public(&self) -> [u8; 32] {
        let mut p = [0u8; 32];
        p.copy_from_slice(self.pair.public_key().as_ref());
        p
    }

    /// The key id.
    pub fn id(&self) -> u32 {
        key_id(&self.name, &self.public())
    }

    /// The verifier an auditor holds.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            id: self.id(),
            public: self.public(),
        }
    }

    /// `text` (ending in a newline) signed: the note.
    pub fn sign(&self, text: &str) -> String {
        let sig = self.pair.sign(text.as_bytes());
        let mut blob = self.id().to_be_bytes().to_vec();
        blob.extend_from_slice(sig.as_ref());
        format!("{text}\n\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// Like ssh, a private key others can read is refused.
fn refuse_open_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot stat {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} can be read by others (mode {:o}): run chmod 600 on it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

fn three_parts(s: &str) -> Result<(&str, u32, &str)> {
    // The key material is base64, which may hold '+': it is the rest.
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("expected <name>+<hex id>+<base64 key>");
    };
    if id.len() != 8 {
        bail!("the key id {id:?} is not 8 hex digits");
    }
    let id = u32::from_str_radix(id, 16).context("the key id is not hex")?;
    Ok((name, id, material))
}

/// A verifier key: who signed and how to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    id: u32,
    public: [u8; 32],
}

impl Verifier {
    /// Parses `<name>+<hex id>+<base64(0x01 || public key)>`.
    pub fn parse(text: &str) -> Result<Self> {
        let (name, id, public) = decode_key(text, ED25519_TYPE)?;
        if key_id(name, &public) != id {
            bail!("the key id does not match the key");
        }
        Ok(Self {
            name: name.to_string(),
            id,
            public,
        })
    }

    /// The verifier key text.
    pub fn encode(&self) -> String {
        encode_key(&self.name, self.id, ED25519_TYPE, &self.public)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks that `note` carries a valid signature by this key; returns its text.
    /// Signatures by other keys are ignored, as the format requires.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str> {
        if note.len() > MAX_NOTE {
            bail!("the note is longer than {MAX_NOTE} bytes");
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            bail!("the note holds control characters");
        }
        let split = note
            .rfind("\n\n")
            .context("the note has no blank line before its signatures")?;
        let (text, sigs) = (&note[..=split], &note[split + 2..]);
        if !sigs.ends_with('\n') {
            bail!("the note's last signature line does not end in a newline");
        }
        let mut known = false;
        for line in sigs.lines() {
            let rest = line
                .strip_prefix("\u{2014} ")
                .with_context(|| format!("malformed signature line {line:?}"))?;
            let (name, blob) = rest
                .split_once(' ')
                .with_context(|| format!("malformed signature line {line:?}"))?;
            let blob = B64
                .decode(blob)
                .with_context(|| format!("the signature of {name} is not base64"))?;
            if name != self.name || blob.len() < 4 || blob[..4] != self.id.to_be_bytes() {
                continue;
            }
            known = true;
            UnparsedPublicKey::new(&ED25519, &self.public)
                .verify(text.as_bytes(), &blob[4..])
                .map_err(|_| anyhow::anyhow!("the signature by {} does not verify", self.name))?;
        }
        if !known {
            bail!("the note is not signed by {}", self.encode());
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_tampering() {
        let key = LogKey::from_seed("example.com/log", [7; 32]).unwrap();
        let again = LogKey::parse(&key.encode()).unwrap();
        assert_eq!(again.verifier(), key.verifier());
        // Keys whose base64 holds '+' (this seed's does) parse too.
        let plus = LogKey::from_seed("example.com/log", [3; 32]).unwrap();
        assert!(
            plus.verifier().encode().matches('+').count() > 2
                || plus.encode().matches('+').count() > 3
        );
        assert!(LogKey::parse(&plus.encode()).is_ok());
        assert!(Verifier::parse(&plus.verifier().encode()).is_ok());
        let v = Verifier::parse(&key.verifier().encode()).unwrap();
        let note = key.sign("example.com/log\n3\nAAAA\n");
        assert_eq!(v.open(&note).unwrap(), "example.com/log\n3\nAAAA\n");
        let tampered = note.replacen("\n3\n", "\n4\n", 1);
        assert!(v.open(&tampered).is_err());
        let other = LogKey::from_seed("example.com/log", [8; 32]).unwrap();
        assert!(other.verifier().open(&note).is_err());
        assert!(LogKey::from_seed("with space", [1; 32]).is_err());
        assert!(Verifier::parse("a+0000000+AQ==").is_err());
    }

    /// The example of the C2SP signed-note specification.
    #[test]
    fn verifies_the_spec_example() {
        let v = Verifier::parse(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        )
        .unwrap();
        let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
        assert_eq!(v.open(note).unwrap(), "This is an example message.\n");
    }
}
