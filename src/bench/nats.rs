//! A three-server NATS JetStream cluster on 127.0.0.1 for `beamd bench
//! scale`: free ports, its own directory, every server killed when dropped.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Three clustered nats-server processes.
pub struct NatsCluster {
    servers: Vec<Child>,
    clients: Vec<u16>,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl NatsCluster {
    /// Starts three servers under `dir` and waits until each takes connections.
    pub fn start(dir: &Path) -> Result<Self> {
        let clients = (0..3).map(|_| free_port()).collect::<Result<Vec<_>>>()?;
        let routes = (0..3).map(|_| free_port()).collect::<Result<Vec<_>>>()?;
        let mut cluster = Self {
            servers: Vec::new(),
            clients,
        };
        for i in 0..3 {
            let others: Vec<String> = (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("nats-route://127.0.0.1:{}", routes[j]))
                .collect();
            let conf = dir.join(format!("n{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: beamd, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                    cluster.clients[i],
                    dir.join(format!("n{i}")).display(),
                    routes[i],
                    others.join(", ")
                ),
            )?;
            let child = Command::new("nats-server")
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot run nats-server (Debian: apt-get install nats-server)")?;
            cluster.servers.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in &cluster.clients {
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                if Instant::now() > deadline {
                    bail!("nats-server did not listen on 127.0.0.1:{port} within 20 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(cluster)
    }

    /// `nats://` with every server.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self
            .clients
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("nats://{}", addrs.join(","))
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for child in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
