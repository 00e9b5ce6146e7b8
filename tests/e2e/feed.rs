//! `/api/v1/events/stream` on a real edge: each tenant's feed carries its own
//! committed events as they commit and never another tenant's; `after`
//! replays what was missed; `maxSeconds` ends the stream; bad parameters
//! and a missing token get the JSON error.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use common::api::{api_edge, error_of, new_token, tenant, Api};
use common::tunnel::ADMIN_TOKEN;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// One server-sent event.
#[derive(Debug)]
struct Sse {
    id: u64,
    kind: String,
    data: Value,
}

struct Feed {
    body: Incoming,
    buffer: String,
}

async fn open(addr: SocketAddr, token: &str, query: &str) -> Result<(u16, Feed)> {
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(TcpStream::connect(addr).await?))
            .await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("/api/v1/events/stream{query}"))
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    Ok((
        status,
        Feed {
            body: resp.into_body(),
            buffer: String::new(),
        },
    ))
}

impl Feed {
    /// The next event, `None` when the stream ends, an error after `wait`.
    async fn next(&mut self, wait: Duration) -> Result<Option<Sse>> {
        tokio::time::timeout(wait, async {
            loop {
                while let Some(cut) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..cut + 2).collect();
                    let (mut id, mut kind, mut data) = (None, None, None);
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = Some(v.trim().parse::<u64>()?);
                        } else if let Some(v) = line.strip_prefix("event:") {
                            kind = Some(v.trim().to_string());
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data = Some(serde_json::from_str::<Value>(v.trim())?);
                        }
                    }
                    // Keep-alive comments carry none of these.
                    if let (Some(id), Some(kind), Some(data)) = (id, kind, data) {
                        return Ok(Some(Sse { id, kind, data }));
                    }
                }
                match self.body.frame().await {
                    None => return Ok(None),
                    Some(frame) => {
                        if let Ok(chunk) = frame?.into_data() {
                            self.buffer.push_str(std::str::from_utf8(&chunk)?);
                        }
                    }
                }
            }
        })
        .await
        .context("no event in time")?
    }

    /// Events until one on `stream` arrives (the others are returned too).
    async fn until_stream(&mut self, stream: &str) -> Result<Vec<Sse>> {
        let mut seen = Vec::new();
        loop {
            match self.next(Duration::from_secs(10)).await? {
                Some(e) => {
                    let done = e.data["stream"] == stream;
                    seen.push(e);
                    if done {
                        return Ok(seen);
                    }
                }
                None => bail!("the feed ended before {stream}: {seen:?}"),
            }
        }
    }
}

async fn new_token_id(api: &Api, label: &str) -> Result<String> {
    let made = new_token(api, label).await?;
    Ok(made.body["id"].as_str().context("id")?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_hears_its_own_events_and_no_others() -> Result<()> {
    let (_dir, edge) = api_edge()?;
    let admin = Api::new(edge.api, ADMIN_TOKEN);
    let (_, other) = tenant(&admin, "feedother").await?;
    let other_token = other.token.clone().context("token")?;

    let (status, mut admin_feed) = open(edge.api, ADMIN_TOKEN, "").await?;
    ensure!(status == 200, "admin feed: {status}");
    let (status, mut other_feed) = open(edge.api, &other_token, "").await?;
    ensure!(status == 200, "other feed: {status}");

    let theirs = new_token_id(&other, "theirs").await?;
    let mine = new_token_id(&admin, "mine").await?;
    let heard = admin_feed.until_stream(&mine).await?;
    ensure!(
        heard.iter().all(|e| e.data["stream"] != theirs.as_str()),
        "the admin's feed carried the other tenant's key: {heard:?}"
    );
    let last = heard.last().context("an event")?;
    ensure!(
        last.kind == "KeyIssued" && last.data["type"] == "KeyIssued" && last.data["seq"] == last.id,
        "{last:?}"
    );
    let heard = other_feed.until_stream(&theirs).await?;
    ensure!(
        heard.iter().all(|e| e.data["stream"] != mine.as_str()),
        "the other tenant's feed carried the admin's key: {heard:?}"
    );

    // Reconnecting with `after` replays what was missed, and `maxSeconds` ends it.
    let before = last.id - 1;
    let (status, mut replay) = open(
        edge.api,
        ADMIN_TOKEN,
        &format!("?after={before}&maxSeconds=1"),
    )
    .await?;
    ensure!(status == 200, "replay: {status}");
    let first = replay
        .next(Duration::from_secs(5))
        .await?
        .context("a replayed event")?;
    ensure!(
        first.id == last.id,
        "replayed {first:?}, wanted seq {}",
        last.id
    );
    let mut ended = false;
    for _ in 0..10 {
        if replay.next(Duration::from_secs(5)).await?.is_none() {
            ended = true;
            break;
        }
    }
    ensure!(ended, "the feed outlived maxSeconds=1");

    // Bad parameters and missing tokens get the JSON error.
    let bad = admin.get("/api/v1/events/stream?maxSeconds=0").await?;
    ensure!(
        bad.status == 400 && error_of(&bad) == "invalid_request",
        "{}",
        bad.text
    );
    let unknown = admin.get("/api/v1/events/stream?since=3").await?;
    ensure!(unknown.status == 400, "{}", unknown.text);
    let anonymous = Api {
        addr: edge.api,
        token: None,
    };
    let refused = anonymous.get("/api/v1/events/stream").await?;
    ensure!(
        refused.status == 401 && error_of(&refused) == "unauthorized",
        "{}",
        refused.text
    );
    Ok(())
}
