//! A DNS server for tests, so that no lookup leaves 127.0.0.1.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

/// A DNS server on 127.0.0.1 that answers each query with what `answer`
/// gives for it (nothing: an empty answer).
async fn serve<F>(answer: F) -> Result<u16>
where
    F: Fn(&Query) -> Option<Record> + Send + 'static,
{
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let port = socket.local_addr()?.port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::response(query.metadata.id, OpCode::Query);
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            reply.metadata.authoritative = true;
            for q in &query.queries {
                reply.add_query(q.clone());
                if let Some(record) = answer(q) {
                    reply.add_answer(record);
                }
            }
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, from).await;
            }
        }
    });
    Ok(port)
}

/// A DNS server on 127.0.0.1 that answers TXT queries for
/// `_beamd-challenge.HOST` with the current value (none when empty), and
/// nothing else.
pub async fn dns_server(host: &'static str, value: Arc<Mutex<String>>) -> Result<u16> {
    serve(move |q| {
        let wanted = format!("_beamd-challenge.{host}.");
        let current = value.lock().map(|v| v.clone()).unwrap_or_default();
        (q.query_type() == RecordType::TXT
            && q.name().to_ascii().eq_ignore_ascii_case(&wanted)
            && !current.is_empty())
        .then(|| Record::from_rdata(q.name().clone(), 5, RData::TXT(TXT::new(vec![current]))))
    })
    .await
}

/// A DNS server on 127.0.0.1 that answers A queries from `names` (name
/// without the final dot → address), with a time to live of 0 so that every
/// lookup sees the current answer, and nothing else.
pub async fn address_server(names: Arc<Mutex<HashMap<String, Ipv4Addr>>>) -> Result<u16> {
    serve(move |q| {
        let name = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let found = names.lock().ok().and_then(|n| n.get(&name).copied());
        match (q.query_type(), found) {
            (RecordType::A, Some(ip)) => {
                Some(Record::from_rdata(q.name().clone(), 0, RData::A(A(ip))))
            }
            _ => None,
        }
    })
    .await
}
