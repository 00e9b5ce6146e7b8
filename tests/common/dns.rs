//! A DNS server for tests, so that no lookup leaves 127.0.0.1.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

/// A DNS server on 127.0.0.1 that answers TXT queries for
/// `_beamd-challenge.HOST` with the current value (none when empty), and
/// nothing else.
pub async fn dns_server(host: &'static str, value: Arc<Mutex<String>>) -> Result<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let port = socket.local_addr()?.port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut answer = Message::response(query.metadata.id, OpCode::Query);
            answer.metadata.recursion_desired = query.metadata.recursion_desired;
            answer.metadata.recursion_available = true;
            answer.metadata.authoritative = true;
            for q in &query.queries {
                answer.add_query(q.clone());
                let wanted = format!("_beamd-challenge.{host}.");
                let current = value.lock().map(|v| v.clone()).unwrap_or_default();
                if q.query_type() == RecordType::TXT
                    && q.name().to_ascii().eq_ignore_ascii_case(&wanted)
                    && !current.is_empty()
                {
                    let txt = RData::TXT(TXT::new(vec![current]));
                    answer.add_answer(Record::from_rdata(q.name().clone(), 5, txt));
                }
            }
            if let Ok(bytes) = answer.to_vec() {
                let _ = socket.send_to(&bytes, from).await;
            }
        }
    });
    Ok(port)
}

/// A DNS server on 127.0.0.1 that answers A queries from `names` (name
/// without the final dot → address), with a time to live of 0 so that every
/// lookup sees the current answer, and nothing else.
pub async fn address_server(
    names: Arc<Mutex<std::collections::HashMap<String, std::net::Ipv4Addr>>>,
) -> Result<u16> {
    use hickory_proto::rr::rdata::A;
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let port = socket.local_addr()?.port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut answer = Message::response(query.metadata.id, OpCode::Query);
            answer.metadata.recursion_desired = query.metadata.recursion_desired;
            answer.metadata.recursion_available = true;
            answer.metadata.authoritative = true;
            for q in &query.queries {
                answer.add_query(q.clone());
                let name = q
                    .name()
                    .to_ascii()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                let found = names.lock().ok().and_then(|n| n.get(&name).copied());
                if let (RecordType::A, Some(ip)) = (q.query_type(), found) {
                    answer.add_answer(Record::from_rdata(q.name().clone(), 0, RData::A(A(ip))));
                }
            }
            if let Ok(bytes) = answer.to_vec() {
                let _ = socket.send_to(&bytes, from).await;
            }
        }
    });
    Ok(port)
}
