//! C2SP tlog-cosignature/v1: a witness's timestamped Ed25519 signature on a
//! checkpoint (signature type 0x04). The signed message is
//! `cosignature/v1\ntime <seconds>\n` followed by the checkpoint's note
//! text; the signature line is `— <name> base64(key id[4] || time[8, big
//! endian] || signature[64])`; the verifier key is
//! `<name>+<hex id>+base64(0x04 || public key)`, the id being the first four
//! bytes of SHA-256(name || '\n' || 0x04 || public key).

use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use super::note::{
    decode_key, encode_key, load_or_create_key, typed_key_id, valid_name, MAX_NOTE, PRIVATE_PREFIX,
};

/// The signature type byte of cosignature/v1.
const COSIGNATURE_TYPE: u8 = 0x04;

/// The key id of a cosigner: SHA-256(name || '\n' || 0x04 || public key)[..4].
fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    typed_key_id(name, COSIGNATURE_TYPE, public)
}

/// What a cosignature signs: the header, the time, the checkpoint's text.
fn message(time: u64, checkpoint_text: &str) -> String {
    format!("cosignature/v1\ntime {time}\n{checkpoint_text}")
}

/// A witness's signing key.
pub struct CosignKey {
    name: String,
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl CosignKey {
    /// A key from its 32-byte seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self> {
        if !valid_name(name) {
            bail!("{name:?} cannot name a witness: it must be non-empty, without spaces or '+'");
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| anyhow::anyhow!("not an Ed25519 seed"))?;
        Ok(Self {
            name: name.to_string(),
            seed,
            pair,
        })
    }

    /// Reads the key file at `path`, or creates one (mode 0600) named
    /// `name`; a `name` given must be the stored key's. Returns the key and
    /// whether it was created.
    pub fn load_or_create(path: &Path, name: &str) -> Result<(Self, bool)> {
        load_or_create_key(path, Self::parse, || {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let key = Self::from_seed(name, seed)?;
            let text = key.encode();
            Ok((key, text))
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex id>+<base64(0x04 || seed)>`.
    pub fn parse(text: &str) -> Result<Self> {
        let rest = text
            .strip_prefix(PRIVATE_PREFIX)
            .context("it does not start with PRIVATE+KEY+")?;
        let (name, id, seed) = decode_key(rest, COSIGNATURE_TYPE)?;
        let key = Self::from_seed(name, seed)?;
        if key.verifier().id != id {
            bail!("the key id does not match the key");
        }
        Ok(key)
    }

    /// The key file's text.
    pub fn encode(&self) -> String {
        let id = self.verifier().id;
        let key = encode_key(&self.name, id, COSIGNATURE_TYPE, &self.seed);
        format!("{PRIVATE_PREFIX}{key}")
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key others check its cosignatures with.
    pub fn verifier(&self) -> CosignVerifier {
        let mut public = [0u8; 32];
        public.copy_from_slice(self.pair.public_key().as_ref());
        CosignVerifier {
            name: self.name.clone(),
            id: key_id(&self.name, &public),
            public,
        }
    }

    /// The signature line cosigning the checkpoint `text` at `time`.
    pub fn cosign(&self, text: &str, time: u64) -> String {
        let sig = self.pair.sign(message(time, text).as_bytes());
        let mut blob = self.verifier().id.to_be_bytes().to_vec();
        blob.extend_from_slice(&time.to_be_bytes());
        blob.extend_from_slice(sig.as_ref());
        format!("\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// A witness's verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignVerifier {
    name: String,
    id: u32,
    public: [u8; 32],
}

impl CosignVerifier {
    /// Parses `<name>+<hex id>+<base64(0x04 || public key)>`.
    pub fn parse(text: &str) -> Result<Self> {
        let (name, id, public) = decode_key(text, COSIGNATURE_TYPE)?;
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
        encode_key(&self.name, self.id, COSIGNATURE_TYPE, &self.public)
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `line` (a note signature line, with or without its newline)
    /// is this key's; if so, the time it cosigned `text` at, or an error if
    /// its signature does not verify.
    pub fn check_line(&self, text: &str, line: &str) -> Option<Result<u64>> {
        let rest = line.trim_end_matches('\n').strip_prefix("\u{2014} ")?;
        let (name, blob) = rest.split_once(' ')?;
        if name != self.name {
            return None;
        }
        let blob = B64.decode(blob).ok()?;
        if blob.len() != 4 + 8 + 64 || blob[..4] != self.id.to_be_bytes() {
            return None;
        }
        let time = u64::from_be_bytes(blob[4..12].try_into().expect("8 bytes"));
        let ok = UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(message(time, text).as_bytes(), &blob[12..])
            .is_ok();
        Some(match ok {
            true => Ok(time),
            false => Err(anyhow::anyhow!(
                "the cosignature by {} does not verify",
                self.name
            )),
        })
    }

    /// The time this witness cosigned `note` (a signed checkpoint) at, if
    /// the note carries its valid cosignature; an error if it carries one
    /// that does not verify.
    pub fn cosigned(&self, note: &str) -> Result<Option<u64>> {
        let (text, lines) = split_note(note)?;
        for line in lines.lines() {
            if let Some(checked) = self.check_line(text, line) {
                return checked.map(Some);
            }
        }
        Ok(None)
    }
}

/// A note's text (with its final newline) and its signature lines.
pub fn split_note(note: &str) -> Result<(&str, &str)> {
    if note.len() > MAX_NOTE {
        bail!("the note is longer than {MAX_NOTE} bytes");
    }
    let split = note
        .find("\n\n")
        .context("the note has no blank line before its signatures")?;
    Ok((&note[..=split], &note[split + 2..]))
}

/// How many of `witnesses` validly cosigned `note`; each counts once, and a
/// cosignature by one of them that does not verify is an error.
pub fn cosignatures(note: &str, witnesses: &[CosignVerifier]) -> Result<usize> {
    let mut n = 0;
    for w in witnesses {
        if w.cosigned(note)?.is_some() {
            n += 1;
        }
    }
    Ok(n)
}

/// What an auditor requires of a checkpoint: valid cosignatures by at
/// least `quorum` of these witnesses (`--witness-key`, `--quorum`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quorum {
    /// The witnesses' keys.
    pub witnesses: Vec<CosignVerifier>,
    /// How many of them must have cosigned.
    pub quorum: usize,
}

impl Quorum {
    /// From `--witness-key KEY|FILE`… and `--quorum N` (default: all of
    /// them); none required without keys.
    pub fn parse(keys: &[String], quorum: Option<usize>) -> Result<Self> {
        let witnesses = keys
            .iter()
            .map(|k| match CosignVerifier::parse(k) {
                Ok(v) => Ok(v),
                Err(_) => {
                    let text = std::fs::read_to_string(k).with_context(|| {
                        format!("--witness-key {k:?} is neither a witness's verifier key nor a readable file")
                    })?;
                    CosignVerifier::parse(&text)
                        .with_context(|| format!("{k} does not hold a witness's verifier key"))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let quorum = quorum.unwrap_or(witnesses.len());
        if quorum > witnesses.len() {
            bail!(
                "--quorum {quorum} is more than the {} witness keys given",
                witnesses.len()
            );
        }
        if quorum == 0 && !witnesses.is_empty() {
            bail!("--quorum 0 would accept any checkpoint: give 1 or more");
        }
        Ok(Self { witnesses, quorum })
    }

    /// Checks `note` carries the quorum; says how many cosigned.
    pub fn check(&self, note: &str) -> Result<usize> {
        let n = cosignatures(note, &self.witnesses)?;
        if n < self.quorum {
            bail!(
                "the checkpoint carries valid cosignatures of {n} of the {} witnesses given; {} are required: it is not witnessed (a log showing another history, or witnesses not reached yet)",
                self.witnesses.len(),
                self.quorum
            );
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cosignature_verifies_for_its_checkpoint_only() {
        let key = CosignKey::from_seed("witness.example/w1", [9; 32]).unwrap();
        let again = CosignKey::parse(&key.encode()).unwrap();
        assert_eq!(again.verifier(), key.verifier());
        let v = CosignVerifier::parse(&key.verifier().encode()).unwrap();
        let text = "example.com/log\n3\nAAAA\n";
        let line = key.cosign(text, 1_679_315_147);
        let note = format!("{text}\n\u{2014} example.com/log AAAAAAAA\n{line}");
        assert_eq!(v.cosigned(&note).unwrap(), Some(1_679_315_147));
        assert_eq!(cosignatures(&note, std::slice::from_ref(&v)).unwrap(), 1);
        let other = format!("example.com/log\n4\nAAAA\n\n{line}");
        assert!(v.cosigned(&other).is_err(), "another checkpoint");
        let stranger = CosignKey::from_seed("witness.example/w2", [9; 32]).unwrap();
        assert_eq!(stranger.verifier().cosigned(&note).unwrap(), None);
        assert!(CosignVerifier::parse("a+00000000+AQ==").is_err());
    }
}
