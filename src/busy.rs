//! Turning an HTTP connection away when the edge is out of file descriptors
//! (past `--fd-reserve`): a short 503 written straight to the socket, without
//! reading the request or starting an HTTP server for it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a refused client gets to take the answer.
const LINGER: Duration = Duration::from_secs(2);
/// How much of a request's head is read before answering anyway.
const MAX_HEAD: usize = 16 * 1024;

/// The raw HTTP/1.1 503 sent by `refuse_busy`.
pub fn busy_response(content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {content_type}\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers 503 with `body` and closes. The request's head is read first
/// (a client may not expect an answer before it has asked), and the rest
/// drained for a moment, so that closing with it unread does not reset the
/// connection before the client has read the answer.
pub async fn refuse_busy(mut socket: TcpStream, content_type: &'static str, body: &'static str) {
    let _ = tokio::time::timeout(LINGER, async {
        let mut head = Vec::new();
        let mut chunk = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            match socket.read(&mut chunk).await? {
                0 => break,
                n => head.extend_from_slice(&chunk[..n]),
            }
        }
        socket.write_all(&busy_response(content_type, body)).await?;
        socket.shutdown().await?;
        while socket.read(&mut chunk).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_a_whole_503() {
        let text = String::from_utf8(busy_response("text/plain", "busy\n")).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(text.contains("content-length: 5\r\n"));
        assert!(text.ends_with("\r\n\r\nbusy\n"));
    }
}
