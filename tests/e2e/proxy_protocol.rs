//! `beamd tcp --proxy-protocol`: nginx (Debian), listening with
//! `proxy_protocol`, logs the public client's address and port, not the
//! agent's, over each transport; a tunnel without the flag is unchanged.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{ensure, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::cluster::eventually;
use crate::common::tunnel::{echo_server, pattern, round_trip, start_agent, start_edge};

/// nginx on 127.0.0.1, expecting a PROXY protocol header on every
/// connection and logging the address it carries; stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx(dir: &Path) -> Result<Nginx> {
    crate::common::tools::debian(&["/usr/sbin/nginx"], &["nginx"])?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let d = dir.display();
    let log = dir.join("access.log");
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log stderr error;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
             log_format client '$proxy_protocol_addr $proxy_protocol_port $remote_addr';\n\
             access_log {} client;\n\
             server {{ listen 127.0.0.1:{port} proxy_protocol; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n",
            log.display()
        ),
    )?;
    let child = Command::new("/usr/sbin/nginx")
        .args(["-e", "stderr", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .spawn()?;
    Ok(Nginx { child, port, log })
}

/// One GET through `public`; returns the client's own port.
async fn get_through(public: std::net::SocketAddr) -> Result<u16> {
    let mut s = tokio::net::TcpStream::connect(public).await?;
    let port = s.local_addr()?.port();
    s.write_all(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n").await?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).await?;
    ensure!(
        answer.starts_with("HTTP/1.1 200"),
        "nginx answered {answer:?}"
    );
    Ok(port)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_sees_the_public_client() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let web = nginx(dir.path())?;
    let nginx_port = web.port;
    eventually("nginx up", || async {
        Ok(tokio::net::TcpStream::connect(("127.0.0.1", nginx_port))
            .await
            .is_ok())
    })
    .await?;
    for (transport, version) in [("tcp", "v2"), ("quic", "v1"), ("ws", "v2")] {
        let data = dir.path().join(format!("edge-{transport}"));
        let edge = start_edge(&data, transport, "127.0.0.1:0", &[])?;
        let agent = start_agent(&edge, transport, web.port, &["--proxy-protocol", version])?;
        let client_port = get_through(agent.public).await?;
        // nginx logs the client's address and port from the header.
        let wanted = format!("127.0.0.1 {client_port} ");
        let log = web.log.clone();
        eventually("the access log line", || {
            let log = log.clone();
            let wanted = wanted.clone();
            async move {
                Ok(std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.starts_with(&wanted)))
            }
        })
        .await
        .with_context(|| {
            format!(
                "{transport} {version}: {:?}",
                std::fs::read_to_string(&web.log)
            )
        })?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_flag_nothing_is_sent_first() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let edge = start_edge(dir.path(), "tcp", "127.0.0.1:0", &[])?;
    let echo = echo_server().await?;
    let agent = start_agent(&edge, "tcp", echo, &[])?;
    // The echo comes back byte for byte: no header in front.
    round_trip(agent.public, pattern(8, 4096)).await?;
    Ok(())
}
