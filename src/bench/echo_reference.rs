//! The reference the echo bench measures `trident echo serve` against: the
//! smallest tokio echo server that gives the chapter's answer
//! (`Server received: <chunk>`, chunks of up to 100 bytes) and does
//! nothing else — no logs, no limits, no graceful shutdown. Run as the
//! hidden `trident __echo-reference --listen ADDR`.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves until killed.
pub fn run(listen: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        eprintln!("Serving on {}", crate::server::sockname(listener.local_addr()?));
        loop {
            let (mut stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let mut buf = [0u8; 100];
                let mut out = Vec::with_capacity(128);
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    out.clear();
                    out.extend_from_slice(b"Server received: ");
                    out.extend_from_slice(&buf[..n]);
                    if stream.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
        }
    })
}
