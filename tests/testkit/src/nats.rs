//! A real nats-server with JetStream on 127.0.0.1, on a port of its own
//! choosing, with its store in a temporary directory; killed on drop.
//! Installed from Debian's packages (apt-get) when it is missing; a failed
//! install panics, failing the test.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn ensure_nats_server() {
    if let Err(e) = crate::tools::debian(&["/usr/sbin/nats-server"], &["nats-server"]) {
        panic!("{e:#}");
    }
}

/// A running nats-server.
pub struct NatsServer {
    child: Child,
    /// `HOST:PORT` for clients.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts one server, installing nats-server first when it is missing.
    pub fn start() -> Self {
        ensure_nats_server();
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut addr = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(at) = line.split("Listening for client connections on ").nth(1) {
                addr = Some(at.trim().to_string());
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            addr: addr.expect("nats-server says where it listens"),
            _dir: dir,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (bound and released: nats-server's cluster
/// port cannot be chosen by the server itself when routes must name it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Three nats-servers clustered with JetStream on 127.0.0.1.
pub struct NatsCluster {
    /// The servers, in order; `None` once killed.
    pub servers: Vec<Option<Child>>,
    /// Their client addresses.
    pub addrs: Vec<String>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts three servers routed to each other, installing nats-server
    /// first when it is missing.
    pub fn start() -> Self {
        ensure_nats_server();
        let dir = tempfile::tempdir().unwrap();
        let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut servers = Vec::new();
        for i in 0..3 {
            let others: Vec<String> = (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("nats-route://127.0.0.1:{}", routes[j]))
                .collect();
            let store = dir.path().join(format!("n{i}"));
            let conf = dir.path().join(format!("n{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: beamd, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                    clients[i],
                    store.display(),
                    routes[i],
                    others.join(", ")
                ),
            )
            .unwrap();
            let child = Command::new("nats-server")
                .arg("-c")
                .arg(&conf)
                .arg("-l")
                .arg(dir.path().join(format!("n{i}.log")))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server starts");
            servers.push(Some(child));
        }
        let mut cluster = Self {
            servers,
            addrs: clients.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            _dir: dir,
        };
        cluster.wait_listening();
        cluster
    }

    /// Waits until every server takes client connections: a client (an
    /// edge) started before that is refused and exits. A server that exits
    /// or stays silent for 30 s panics, naming its log.
    fn wait_listening(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        for (i, addr) in self.addrs.iter().enumerate() {
            let log = self._dir.path().join(format!("n{i}.log"));
            loop {
                if std::net::TcpStream::connect(addr).is_ok() {
                    break;
                }
                let exited = (self.servers[i].as_mut()).and_then(|c| c.try_wait().ok().flatten());
                if let Some(status) = exited {
                    panic!("nats-server n{i} exited ({status}); see {}", log.display());
                }
                if std::time::Instant::now() >= deadline {
                    panic!(
                        "nats-server n{i} did not listen on {addr} within 30 s; see {}",
                        log.display()
                    );
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }

    /// `nats://` with every server.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addrs.join(","))
    }

    /// SIGKILLs server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }
}
