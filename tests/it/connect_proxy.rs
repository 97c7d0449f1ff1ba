//! A minimal HTTP CONNECT proxy for the outbound-proxy tests: it records each CONNECT request's
//! head (request line and headers) and tunnels to 127.0.0.1 on the port asked for, whatever host
//! was named, so a receiver's made-up host name still reaches a local downstream.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// The heads of the CONNECT requests received, in order.
pub type Heads = Arc<Mutex<Vec<String>>>;

/// Starts the proxy on 127.0.0.1:0.
pub async fn start() -> (SocketAddr, Heads) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Heads::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut client = BufReader::new(stream);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    client.read_line(&mut line).await.ok()?;
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    head.push_str(&line);
                }
                record.lock().unwrap().push(head.clone());
                let target = head.split_whitespace().nth(1)?;
                let port = target.rsplit_once(':')?.1;
                let mut upstream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await.ok()?;
                client.get_mut().write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.ok()?;
                let mut client = client.into_inner();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                Some(())
            });
        }
    });
    (addr, seen)
}

/// The value of header `name` in a recorded head, if present.
pub fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}
