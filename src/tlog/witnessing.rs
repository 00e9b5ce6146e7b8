//! The edge's side of witnessing: each new checkpoint goes to every witness
//! named by `--witness URL=VKEY` (C2SP tlog-witness `add-checkpoint`), with
//! the consistency proof from the size that witness last cosigned (learnt
//! from its 409 answer when the edge does not know it); each cosignature is
//! checked with the witness's key, kept beside the checkpoint, and served
//! with it. Failures are retried with backoff and reported.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use beamd_events::merkle::prove_consistency;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use super::cosign::{split_note, CosignVerifier};
use super::keeper::Transparency;

/// How often a witness's task looks for a newer checkpoint.
const POLL: Duration = Duration::from_millis(250);
/// The first wait after a failure; doubled up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long one exchange with a witness may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A witness the edge submits its checkpoints to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessTarget {
    /// Its submission URL prefix (`http://HOST:PORT[/prefix]`).
    pub url: String,
    /// Its cosignature key.
    pub key: CosignVerifier,
}

impl WitnessTarget {
    /// Parses `URL=VKEY`.
    pub fn parse(text: &str) -> Result<Self> {
        let (url, vkey) = text
            .split_once('=')
            .context("expected URL=VKEY (the witness's URL and its verifier key)")?;
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("{url}: a witness is reached over http:// (put TLS in front of it with a proxy you trust)");
        };
        if rest.is_empty() || rest.starts_with('/') {
            bail!("{url} has no host");
        }
        let key = CosignVerifier::parse(vkey)
            .with_context(|| format!("{vkey}: not a witness's verifier key"))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            key,
        })
    }
}

/// What the edge knows of one witness, for `/status` and metrics.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WitnessReport {
    /// The witness's name (from its key).
    pub name: String,
    /// Where it is reached.
    pub url: String,
    /// The largest checkpoint size it cosigned (0: none yet).
    pub cosigned_size: u64,
    /// Submissions that failed since the edge started.
    pub failures: u64,
    /// Why the last submission failed, while it is not mended.
    pub last_error: Option<String>,
}

/// The witnesses and what is known of each.
pub struct Witnessing {
    targets: Vec<WitnessTarget>,
    reports: Mutex<Vec<WitnessReport>>,
}

impl Witnessing {
    /// The edge's witnesses.
    pub fn new(targets: Vec<WitnessTarget>) -> Arc<Self> {
        let reports = targets
            .iter()
            .map(|t| WitnessReport {
                name: t.key.name().to_string(),
                url: t.url.clone(),
                ..WitnessReport::default()
            })
            .collect();
        Arc::new(Self {
            targets,
            reports: Mutex::new(reports),
        })
    }

    /// What is known of each witness.
    pub fn reports(&self) -> Vec<WitnessReport> {
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update(&self, i: usize, f: impl FnOnce(&mut WitnessReport)) {
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut reports[i]);
        let r = &reports[i];
        metrics::gauge!(crate::metric_catalog::WITNESS_COSIGNED_SIZE.name, "witness" => r.name.clone())
            .set(r.cosigned_size as f64);
    }

    /// Submits the checkpoints of `t` to every witness until `stop`.
    pub fn spawn(self: &Arc<Self>, t: Arc<Transparency>, stop: CancellationToken) {
        for i in 0..self.targets.len() {
            let (me, t, stop) = (self.clone(), t.clone(), stop.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = me.serve(i, t) => {}
                }
            });
        }
    }

    /// One witness's loop: each newer checkpoint, submitted until cosigned.
    async fn serve(&self, i: usize, t: Arc<Transparency>) {
        let target = &self.targets[i];
        // The size the witness holds, as far as the edge knows (0: ask it),
        // and the checkpoint it last cosigned for this edge.
        let (mut held, mut cosigned) = (0u64, None);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let Some(latest) = t.latest() else {
                tokio::time::sleep(POLL).await;
                continue;
            };
            let size = latest.checkpoint.size;
            if cosigned == Some(size) {
                tokio::time::sleep(POLL).await;
                continue;
            }
            match submit(&t, target, held, size, &latest.note).await {
                Ok(Submitted::Cosigned(line)) => {
                    if let Err(e) = t.add_cosignature(size, target.key.name(), &line) {
                        tracing::error!("witness {}: {e:#}", target.key.name());
                    }
                    (held, cosigned) = (size, Some(size));
                    backoff = FIRST_BACKOFF;
                    self.update(i, |r| {
                        r.cosigned_size = size;
                        r.last_error = None;
                    });
                }
                Ok(Submitted::Holds(theirs)) if theirs <= size && theirs != held => {
                    // Learnt where the witness is; submit again from there
                    // (at its size, too: a cosignature lost in a crash of
                    // the edge is asked for again).
                    held = theirs;
                }
                outcome => {
                    let why = match outcome {
                        Ok(Submitted::Holds(theirs)) => format!(
                            "the witness holds a checkpoint of {theirs} events, this log has {size}: it cosigned another history of this log"
                        ),
                        Err(e) => format!("{e:#}"),
                        Ok(Submitted::Cosigned(_)) => unreachable!("handled above"),
                    };
                    tracing::warn!(
                        "witness {}: {why}; trying again in {backoff:?}",
                        target.key.name()
                    );
                    metrics::counter!(crate::metric_catalog::WITNESS_FAILURES.name, "witness" => target.key.name().to_string())
                        .increment(1);
                    self.update(i, |r| {
                        r.failures += 1;
                        r.last_error = Some(why);
                    });
                    // Asked again from what it holds: it may have moved on.
                    held = 0;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// A witness's answer.
enum Submitted {
    /// Its cosignature line, checked.
    Cosigned(String),
    /// 409: the size it holds.
    Holds(u64),
}

/// Submits the checkpoint `note` of `size` to `target`, with the proof from `held`.
async fn submit(
    t: &Transparency,
    target: &WitnessTarget,
    held: u64,
    size: u64,
    note: &str,
) -> Result<Submitted> {
    let proof = match held {
        0 => Vec::new(),
        n => prove_consistency(t.tiles(), n, size)?
            .with_context(|| format!("no consistency proof from {n} to {size}"))?,
    };
    let mut body = format!("old {held}\n");
    for h in &proof {
        body.push_str(&B64.encode(h));
        body.push('\n');
    }
    body.push('\n');
    // The log's own note (the edge's signature only).
    body.push_str(note);
    let (status, answer) = tokio::time::timeout(EXCHANGE_TIMEOUT, post(&target.url, body))
        .await
        .map_err(|_| {
            anyhow::anyhow!("{} did not answer within {EXCHANGE_TIMEOUT:?}", target.url)
        })??;
    match status {
        200 => {
            let (text, _) = split_note(note)?;
            for line in answer.lines() {
                match target.key.check_line(text, line) {
                    Some(Ok(_)) => return Ok(Submitted::Cosigned(format!("{line}\n"))),
                    Some(Err(e)) => return Err(e),
                    None => {}
                }
            }
            bail!(
                "the witness answered without a cosignature by its key {}",
                target.key.encode()
            )
        }
        409 => {
            let theirs = answer
                .trim()
                .parse()
                .with_context(|| format!("a 409 without a size: {answer:?}"))?;
            Ok(Submitted::Holds(theirs))
        }
        other => bail!(
            "the witness refused the checkpoint of {size} events ({other}): {}",
            answer.trim()
        ),
    }
}

/// POSTs `body` to `<url>/add-checkpoint` over plain HTTP/1.1.
async fn post(url: &str, body: String) -> Result<(u16, String)> {
    let uri: hyper::Uri = format!("{url}/add-checkpoint").parse()?;
    let authority = uri.authority().context("no host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((authority.host(), port))
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = hyper::Request::post(uri.path())
        .header(hyper::header::HOST, authority.as_str())
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = Limited::new(response.into_body(), 1 << 16)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}
