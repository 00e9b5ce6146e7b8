//! Where a JetStream log lives: servers, stream name and replicas, from a
//! `nats://HOST:PORT[,HOST:PORT…]` address.

use crate::error::LogError;

/// Where a JetStream log lives.
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// `HOST:PORT` of one or more NATS servers.
    pub servers: Vec<String>,
    /// The JetStream stream's name (`BEAMD_EVENTS` by default).
    pub stream: String,
    /// Copies the stream keeps (3 on a three-server cluster).
    pub replicas: usize,
}

impl JetStreamConfig {
    /// Parses `nats://HOST:PORT[,HOST:PORT…]`, with one replica per server (at most 3).
    pub fn parse(url: &str) -> Result<Self, LogError> {
        let rest = url
            .strip_prefix("nats://")
            .ok_or_else(|| bad_config(format!("{url:?} does not start with nats://")))?;
        let servers: Vec<String> = rest
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() || servers.iter().any(|s| !s.contains(':')) {
            return Err(bad_config(format!(
                "{url:?}: expected nats://HOST:PORT[,HOST:PORT…]"
            )));
        }
        Ok(Self {
            replicas: servers.len().min(3),
            servers,
            stream: "BEAMD_EVENTS".into(),
        })
    }

    /// The subject the log's messages are published on.
    pub(super) fn subject(&self) -> String {
        format!("beamd.ev.{}", self.stream)
    }
}

fn bad_config(message: String) -> LogError {
    LogError::Storage {
        context: "reading the JetStream log's address",
        source: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_a_replica_per_server() {
        let c = JetStreamConfig::parse("nats://127.0.0.1:4222,127.0.0.1:4223").unwrap();
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.replicas, 2);
        assert!(JetStreamConfig::parse("127.0.0.1:4222").is_err());
        assert!(JetStreamConfig::parse("nats://").is_err());
        assert!(JetStreamConfig::parse("nats://host").is_err());
    }
}
