//! Mail for password resets, through a configured SMTP relay (lettre). The
//! relay is spoken to in plain SMTP: point it at a local relay (postfix,
//! a provider's submission proxy) that does TLS and authentication onward.

use std::net::SocketAddr;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where mail goes out.
#[derive(Debug, Clone)]
pub struct Mailer {
    /// The relay.
    pub relay: SocketAddr,
    /// The sender.
    pub from: Mailbox,
}

impl Mailer {
    /// Sends a plain-text mail; the relay's refusal as text.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("bad address {to:?}: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(body)
            .map_err(|e| e.to_string())?;
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.relay.ip().to_string())
                .port(self.relay.port())
                .build();
        transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
