//! Framing: a u32 big-endian length, then that many bytes of rmp-serde.
//! Works over any byte stream; a frame over `MAX_FRAME` is refused unread.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 64 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The stream failed or ended mid-frame.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame announced more than `MAX_FRAME` bytes.
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// A frame did not decode.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The peer closed the stream between frames.
    #[error("the peer closed the stream")]
    Closed,
}

impl ProtocolError {
    /// The error-frame code for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::TooLarge(_) => "frame_too_large",
            ProtocolError::Malformed(_) => "malformed_frame",
            ProtocolError::Io(_) | ProtocolError::Closed => "closed",
        }
    }
}

/// Reads one frame.
pub async fn read_frame<T: DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
) -> Result<T, ProtocolError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(ProtocolError::Closed)
        }
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(ProtocolError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    rmp_serde::from_slice(&body).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Writes one frame and flushes it.
pub async fn write_frame<T: Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    frame: &T,
) -> Result<(), ProtocolError> {
    let body =
        rmp_serde::to_vec_named(frame).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(ProtocolError::TooLarge(body.len()));
    }
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentFrame, EdgeFrame, Hello, Token};

    #[tokio::test]
    async fn frames_round_trip_and_limits_hold() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let hello = AgentFrame::Hello(Hello {
            version: 1,
            token: Token("tok_a.b".into()),
            tunnels: vec![],
            udp_datagrams: true,
        });
        write_frame(&mut a, &hello).await.unwrap();
        assert_eq!(read_frame::<AgentFrame>(&mut b).await.unwrap(), hello);
        a.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        assert!(matches!(
            read_frame::<AgentFrame>(&mut b).await,
            Err(ProtocolError::TooLarge(_))
        ));
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        a.write_all(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]).await.unwrap();
        assert!(matches!(
            read_frame::<EdgeFrame>(&mut b).await,
            Err(ProtocolError::Malformed(_))
        ));
        drop(a);
        assert!(matches!(
            read_frame::<EdgeFrame>(&mut b).await,
            Err(ProtocolError::Closed)
        ));
    }
}
